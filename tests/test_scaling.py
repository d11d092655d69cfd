"""The scaling study (`worldsim scaling`, worldsim/eval/scaling.py): FLOP counts, the ladder, the fit, the outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from wm_helpers import one_line_error

from worldsim.cli import main as cli
from worldsim.eval.scaling import fit_power_law

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_power_law_fit_recovers_its_exponent():
    c = np.geomspace(1e12, 1e15, 6)
    fit = fit_power_law(list(c), list(3.0 * c**-0.05))
    assert abs(fit["b"] - 0.05) < 1e-9 and abs(fit["a"] - 3.0) < 1e-6 and fit["r2"] > 0.999999


def _study(tiny_pipeline, out) -> list[str]:
    return ["scaling", f"store={tiny_pipeline['store']}", f"vae={tiny_pipeline['vae']}",
            f"heldout={tiny_pipeline['heldout']}", f"out={out}", "sizes=[32x1,64x2]", "points=2", "probe_steps=2",
            "max_flops=2e10", "val_windows=2", "psnr_windows=2", "train.frames=4", "train.batch_size=2",
            "train.warmup=1", "++train.text.width=32", "++train.text.depth=1", "++train.text.heads=2",
            "++train.device=cpu"]


def test_scaling_study_writes_the_ladder_fit_and_plot_deterministically(tiny_pipeline, tmp_path):
    assert cli(_study(tiny_pipeline, tmp_path / "a")) == 0
    res = json.loads((tmp_path / "a" / "scaling.json").read_text())
    rows = res["rows"]
    assert [r["size"] for r in rows] == ["32x1", "32x1", "64x2", "64x2"]
    assert res["budgets"] == [1e10, 2e10]
    for size in ("32x1", "64x2"):
        a, b = [r for r in rows if r["size"] == size]
        assert a["steps"] <= b["steps"] and a["flops"] <= b["flops"]
        assert np.isfinite(a["heldout_loss"]) and np.isfinite(a["next_frame_psnr"])
    small, big = res["probe"]["32x1"], res["probe"]["64x2"]
    assert big["flops_per_step"] > 2 * small["flops_per_step"] and big["parameters"] > small["parameters"]
    assert np.isfinite(res["frontier_fit"]["b"]) and len(res["frontier"]) == 2
    assert (tmp_path / "a" / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "held-out loss" in (tmp_path / "a" / "report.md").read_text()
    # same ladder, seed and data: the same numbers
    assert cli(_study(tiny_pipeline, tmp_path / "b")) == 0
    again = json.loads((tmp_path / "b" / "scaling.json").read_text())["rows"]
    assert [(r["steps"], r["heldout_loss"]) for r in again] == [(r["steps"], r["heldout_loss"]) for r in rows]


def test_scaling_refuses_bad_sizes(tiny_pipeline, tmp_path, capsys):
    args = _study(tiny_pipeline, tmp_path / "x")
    err = one_line_error(capsys, cli, [*args, "sizes=[64x2]"])
    assert "at least two" in err
    err = one_line_error(capsys, cli, [*args, "sizes=[50x2,64x2]"])
    assert "multiple of 32" in err
