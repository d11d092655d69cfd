"""Scripted probe episodes (datagen/probes.py) and `worldsim probe` (worldsim/eval/sim_probes.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from wm_helpers import one_line_error

from datagen.probes import voxel_probe
from worldsim.cli import main as cli
from worldsim.eval.metrics import psnr_uint8
from worldsim.eval.sim_probes import change_mask, strip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_revisit_script_returns_to_the_view_it_left():
    ok = 0
    for seed in range(4):
        ep = voxel_probe("revisit", seed, 32, 32, warmup=4)
        m, f = ep["marks"], ep["frames"]
        assert len(f) == len(ep["actions"]) + 1 and ep["actions"].shape[1] == 12
        assert m["start"] == 4 and m["far"] - m["leave"] == 6 and m["back"] - m["far"] == 6
        yaw = ep["actions"][m["leave"] : m["back"], 10]
        assert abs(yaw.sum()) < 1e-4 and abs(yaw[:6].sum()) == 180
        if ep["ok"]:
            ok += 1
            assert psnr_uint8(f[m["back"]], f[m["leave"]]) > 40  # the engine's view on return is the one it left
            assert psnr_uint8(f[m["far"]], f[m["leave"]]) < 30  # and it really looked elsewhere
    assert ok >= 2
    again = voxel_probe("revisit", 1, 32, 32, warmup=4)
    assert np.array_equal(again["frames"], voxel_probe("revisit", 1, 32, 32, warmup=4)["frames"])


def test_interaction_script_breaks_a_block_the_engine_still_shows():
    done = 0
    for seed in range(4):
        ep = voxel_probe("interaction", seed, 32, 32, warmup=4)
        m, f = ep["marks"], ep["frames"]
        assert m["before"] < m["broken"] < m["leave"] < m["far"] < m["back"]
        if ep["ok"]:
            done += 1
            mask = change_mask(f[m["before"]], f[m["back"]])
            assert mask.mean() > 0.01  # the hole is visible on return
            assert ep["actions"][m["before"] : m["broken"], 7].min() == 1  # attack held until the break
    assert done >= 2
    with pytest.raises(ValueError, match="unknown voxel probe"):
        voxel_probe("teleport", 0)


def test_strip_lays_out_rows_and_columns():
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    pic = strip([("a", frames), ("b", frames)], [("x", 0), ("y", 4)], scale=2)
    assert pic.shape == (18 + 2 * 20, 150 + 2 * 20, 3)


def test_probe_command_scores_and_draws_deterministically(tiny_pipeline, tmp_path, capsys):
    args = ["probe", f"ckpt={tiny_pipeline['causal']}", "episodes=3", "pictures=1", "seed=40", "steps=1"]
    assert cli([*args, f"out={tmp_path / 'a'}"]) == 0
    res = json.loads((tmp_path / "a" / "probe.json").read_text())
    rev, it = res["probes"]["revisit"], res["probes"]["interaction"]
    assert rev["episodes"] + rev["skipped"] == 3 and it["episodes"] + it["skipped"] == 3
    assert rev["episodes"] and it["episodes"]
    for key in ("far_model_psnr", "far_copy_last_psnr", "return_model_psnr", "return_engine_psnr"):
        assert np.isfinite(rev[key]), key
    assert 0 <= it["persist_kept"] <= 1 and 0 <= it["interact_drawn"] <= 1 and it["changed_pixels"] > 0
    assert len(list((tmp_path / "a" / "frames").glob("revisit_*.png"))) == 1
    assert "interaction | persist" in (tmp_path / "a" / "report.md").read_text()
    assert cli([*args, f"out={tmp_path / 'b'}"]) == 0
    again = json.loads((tmp_path / "b" / "probe.json").read_text())
    assert again["probes"] == res["probes"]
    err = one_line_error(capsys, cli, [*args, "kinds=[orbit]", f"out={tmp_path / 'c'}"])
    assert "kinds must be" in err
