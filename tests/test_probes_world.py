"""Scripted probe episodes (datagen/probes.py) and `worldsim probe` (worldsim/eval/sim_probes.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from wm_helpers import one_line_error

from datagen.probes import physics_probe, voxel_probe
from worldsim.cli import main as cli
from worldsim.eval import sim_probes as P
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
    assert "kinds must be" in err and "voxel" in err  # orbit is a physics probe


def test_orbit_script_circles_a_still_scene_and_comes_back():
    ok = 0
    for seed in range(4):
        ep = physics_probe("orbit", seed, 32, 32, orbit_rate=240.0)
        m, f = ep["marks"], ep["frames"]
        assert len(f) == len(ep["actions"]) + 1 == len(ep["segmentation"]) and ep["actions"].shape[1] == 5
        orbit = ep["actions"][m["leave"] : m["back"], 2]
        assert abs(orbit.sum()) < 1e-6 and abs(orbit[:6].sum()) == 6 and not ep["actions"][:, :2].any()
        if ep["ok"]:
            ok += 1
            assert psnr_uint8(f[m["back"]], f[m["leave"]]) > 35  # the view it left
            assert psnr_uint8(f[m["far"]], f[m["leave"]]) < 25  # 96 degrees round the table
    assert ok >= 2
    again = physics_probe("orbit", 1, 32, 32, orbit_rate=240.0)
    assert np.array_equal(again["frames"], physics_probe("orbit", 1, 32, 32, orbit_rate=240.0)["frames"])


def test_drop_and_push_scripts_move_objects_with_ground_truth():
    for seed in range(3):
        drop = physics_probe("drop", seed, 32, 32, control="pusher")
        assert drop["marks"] == {"start": 1, "end": 16} and drop["actions"].shape == (16, 2)
        assert not drop["actions"].any() and drop["ok"]  # nothing driven, something fell
        push = physics_probe("push", seed, 32, 32, control="both")
        m, a = push["marks"], push["actions"]
        assert push["ok"] and push["target"] in {o["id"] for o in push["objects"]}
        assert np.allclose(np.linalg.norm(a[m["start"] - 2 : m["start"] + 5, :2], axis=1), 1, atol=1e-5)
        assert not a[m["start"] + 5 :].any() and not a[:, 2:].any()  # the puck stops; the camera never moves
        assert (push["segmentation"][m["end"]] == push["target"]).any()
    with pytest.raises(ValueError, match="needs a model whose action drives camera or both"):
        physics_probe("orbit", 0, control="pusher")
    for kind in ("revisit", "colour"):
        with pytest.raises(ValueError, match="unknown physics probe episode"):
            physics_probe(kind, 0)


class _Replay:
    """A stand-in world model for testing the scorers: `oracle` replays the engine, `copy` repeats the last frame."""

    frames, k = 14, 1

    def __init__(self, ep, mode):
        self.ep, self.mode = ep, mode

    def rollout(self, ctx, actions, steps, seed):
        f, n = self.ep["frames"], len(actions) + 1
        i = next(i for i in range(len(f)) if np.array_equal(f[i : i + len(ctx)], ctx))
        if self.mode == "oracle":
            return f[i : i + n].copy()
        return np.concatenate([ctx, np.repeat(ctx[-1:], n - len(ctx), 0)])


@pytest.mark.parametrize("kind", ["drop", "push"])
def test_object_scores_put_the_engine_at_the_ceiling_and_copy_last_at_the_floor(kind):
    eps = [ep for ep in (physics_probe(kind, seed, 48, 48) for seed in range(5)) if ep["ok"]]
    oracle = P.summarize(kind, [P.score_objects(_Replay(ep, "oracle"), ep, 1, 0)[0] for ep in eps], 0)
    copy = P.summarize(kind, [P.score_objects(_Replay(ep, "copy"), ep, 1, 0)[0] for ep in eps], 0)
    assert oracle["objects"] == copy["objects"] >= 3
    assert oracle["lost"] == 0 and oracle["model_px"] == oracle["ceiling_px"] < 1.0
    assert oracle["closer_than_copy_last"] > 0.8 and copy["closer_than_copy_last"] < 0.2
    assert oracle["copy_last_px"] > 3 and abs(copy["model_px"] - copy["copy_last_px"]) < 1.0
    assert copy["end_model_psnr"] == copy["end_copy_last_psnr"] < oracle["end_model_psnr"]
    if kind == "push":  # the puck: where the actions drove it
        assert oracle["pusher_model_px"] < 1.0 < copy["pusher_model_px"]


def test_orbit_scores_path_far_point_and_return():
    eps = [ep for ep in (physics_probe("orbit", seed, 32, 32, orbit_rate=240.0) for seed in range(4)) if ep["ok"]]
    oracle = P.summarize("orbit", [P.score_orbit(_Replay(ep, "oracle"), ep, 1, 0)[0] for ep in eps], 0)
    copy = P.summarize("orbit", [P.score_orbit(_Replay(ep, "copy"), ep, 1, 0)[0] for ep in eps], 0)
    assert oracle["path_model_psnr"] > 40 > copy["path_model_psnr"] == copy["path_copy_last_psnr"]
    assert oracle["far_beats_copy_last"] == 1 and copy["far_beats_copy_last"] == 0
    assert oracle["return_model_psnr"] == oracle["return_engine_psnr"]


def test_probe_command_on_a_physics_model(tmp_path, capsys):
    from wm_helpers import TINY_VAE, train_args

    from datagen.job import run
    from datagen.rollout import Job

    store = tmp_path / "store"
    run(Job(env_id="worldsim/Physics-v0", env_kwargs={"task": "observe", "control": "both", "scene": "table",
                                                      "orbit_rate": 240}, width=32, height=32, episodes=2,
            steps=12, seed=0, policy="mix"), str(store), workers=1)
    assert cli(["train-vae", f"store={store}", f"out={tmp_path / 'vae'}", "steps=1", "batch_size=2", "eval_every=1",
                "save_every=1", "val_windows=1", "warmup=1", "device=cpu", *TINY_VAE]) == 0
    assert cli(train_args(store, tmp_path / "vae", tmp_path / "dit", 1, "model.attention=causal")) == 0
    args = ["probe", f"ckpt={tmp_path / 'dit'}", "episodes=2", "pictures=1", "seed=7"]
    assert cli([*args, f"out={tmp_path / 'a'}"]) == 0
    res = json.loads((tmp_path / "a" / "probe.json").read_text())
    assert res["engine"] == "physics" and res["env"] == {"control": "both", "orbit_rate": 240.0, "fps": 15}
    assert set(res["probes"]) == {"orbit", "drop", "push", "colour"}
    col = res["probes"]["colour"]
    assert 4 <= len(col["colours"]) <= 12 and col["samples"] == 2 * len(col["colours"])
    assert col["engine"]["accuracy"] > 0.8 and col["engine"]["named_share"] > 5 * col["engine"]["unnamed_share"]
    assert 0 <= col["model"]["accuracy"] <= 1 and col["chance"] == round(1 / len(col["colours"]), 3)
    assert (tmp_path / "a" / "frames" / "colour.png").is_file()
    for kind in ("drop", "push"):
        assert res["probes"][kind]["episodes"] == 2 and res["probes"][kind]["objects"] >= 1
        assert np.isfinite(res["probes"][kind]["end_model_psnr"])
    text = (tmp_path / "a" / "report.md").read_text()
    assert "| drop | end frame PSNR" in text and "| push |" in text
    assert len(list((tmp_path / "a" / "frames").glob("drop_*.png"))) == 1
    assert cli([*args, "kinds=[push,colour]", f"out={tmp_path / 'b'}"]) == 0
    again = json.loads((tmp_path / "b" / "probe.json").read_text())
    assert set(again["probes"]) == {"push", "colour"}
    assert again["probes"]["push"] == res["probes"]["push"]  # deterministic
    assert again["probes"]["colour"] == res["probes"]["colour"]
    err = one_line_error(capsys, cli, [*args, "kinds=[revisit]", f"out={tmp_path / 'c'}"])
    assert "for this physics model (control=both)" in err
