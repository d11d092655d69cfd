"""The generated-video detector (worldsim/eval/detector.py, `worldsim train-detector`, `worldsim detect`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from wm_helpers import one_line_error

from worldsim.cli import main as cli
from worldsim.eval.detector import at_fpr, load_detector, read_clips, roc_auc, threshold_for
from worldsim.model import checkpoint as C

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_auc_and_operating_point():
    assert roc_auc([0.1, 0.2], [0.8, 0.9]) == 1.0 and roc_auc([0.8, 0.9], [0.1, 0.2]) == 0.0
    assert roc_auc([0.5, 0.5], [0.5, 0.5]) == 0.5 and roc_auc([0.1, 0.6], [0.5, 0.9]) == 0.75
    neg = np.linspace(0, 1, 101)
    thr = threshold_for(neg, 0.01)
    op = at_fpr(neg, np.array([2.0, 0.5]), thr)
    assert op["tpr"] == 0.5 and 0 < op["fpr"] <= 0.01 and op["accuracy"] == round((0.5 + 1 - op["fpr"]) / 2, 4)


@pytest.fixture(scope="module")
def detector(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "d"
    args = ["train-detector", f"real=[{tiny_pipeline['store']},{tiny_pipeline['heldout']}]",
            f"models=[{tiny_pipeline['causal']}]", f"unseen=[{tiny_pipeline['memory']}]", f"out={out}", "frames=4",
            "context=2", "clips=12", "size=32", "steps=40", "batch_size=8", "lr=0.003", "width=8", "device=cpu"]
    assert cli(args) == 0
    return out, args


def test_detector_separates_engine_from_model_clips_and_is_deterministic(detector, tmp_path):
    out, args = detector
    meta = C.load_meta(C.resolve(out), kind="detector")
    m = meta["metrics"]
    # a 2-step model draws nothing like the engine: held-out and unseen clips are told apart
    assert m["heldout"]["auc"] > 0.9 and m["heldout_mp4"]["auc"] > 0.9, m
    (unseen,) = m["unseen"].values()
    assert unseen["auc"] > 0.9 and unseen["clips"] >= 8
    assert meta["models"][0]["digest"] and meta["real"][0]["digest"]
    again = tmp_path / "again"
    assert cli([*args[:-10], f"out={again}", *args[-9:]]) == 0
    assert (C.resolve(again) / "model.safetensors").read_bytes() == (C.resolve(out) / "model.safetensors").read_bytes()


def test_detect_scores_files(detector, tiny_pipeline, tmp_path, capsys):
    import imageio.v2 as imageio

    from store import read_episode

    out, _ = detector
    engine = tmp_path / "engine.mp4"
    with imageio.get_writer(engine, fps=20, codec="libx264", quality=8, macro_block_size=1) as w:
        for f in read_episode(str(tiny_pipeline["heldout"]), 1)["frames"][:12]:
            w.append_data(f)
    model = tmp_path / "model.mp4"
    assert cli(["sample", f"ckpt={tiny_pipeline['causal']}", "mode=t2v", "frames=12", "steps=1",
                f"out={model}", "device=cpu"]) == 0
    capsys.readouterr()
    assert cli(["detect", f"path=[{engine},{model}]", f"ckpt={out}", "json=true"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["clips"] for r in rows] == [3, 3] and len(rows[0]["scores"]) == 3
    assert rows[1]["mean_score"] > rows[0]["mean_score"]
    assert read_clips(engine, 4).shape == (3, 4, 32, 32, 3)
    det = load_detector(out)
    with pytest.raises(Exception, match="clips must be"):
        det.score(np.zeros((2, 3, 32, 32, 3), np.uint8))
    short = tmp_path / "short.mp4"
    with imageio.get_writer(short, fps=20, codec="libx264", macro_block_size=1) as w:
        w.append_data(np.zeros((32, 32, 3), np.uint8))
    err = one_line_error(capsys, cli, ["detect", str(short), f"ckpt={out}"])
    assert "has 1 frames" in err
    err = one_line_error(capsys, cli, ["train-detector", f"real={tiny_pipeline['store']}", f"out={tmp_path / 'x'}"])
    assert "models= is required" in err


def test_eval_reports_the_detectors_auc_on_the_rollouts(detector, tiny_pipeline, tmp_path):
    out, _ = detector
    ev = tmp_path / "ev"
    assert cli(["eval", f"ckpt={tiny_pipeline['causal']}", f"store={tiny_pipeline['heldout']}", f"out={ev}",
                "windows=4", "episodes=2", "horizons=[1,8]", "steps=1", "videos=0", "idm_steps=0", "attr_steps=0",
                "revisits=0", f"detector={out}"]) == 0
    d = json.loads((ev / "eval.json").read_text())["detector"]
    assert 0.0 <= d["auc"] <= 1.0 and d["clips"] >= 2 and d["detector_digest"]
    assert "detector AUC (realism" in (ev / "report.md").read_text()
