"""Honest resumes: a rerun into a run's `out` continues it only with the same model and data; harmless changes are
said; a `latest` naming a missing checkpoint falls back to the newest intact one; nothing restarts from zero."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from wm_helpers import TINY_VAE, tiny_store, train_args

from worldsim.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _steps(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))


def _logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture()
def run(tiny_pipeline, tmp_path) -> Path:
    """A copy of the session's 2-step frame-causal run (tiny model, its own store and VAE)."""
    out = tmp_path / "run"
    shutil.copytree(tiny_pipeline["causal"], out)
    return out


def _resume(tiny_pipeline, run: Path, steps: int, *extra: str, store: Path | None = None) -> int:
    args = train_args(store or tiny_pipeline["store"], tiny_pipeline["vae"], run, steps, "model.attention=causal",
                      *extra)
    return cli(args)


def test_a_harmless_change_resumes_and_is_said(tiny_pipeline, run, capsys):
    assert _resume(tiny_pipeline, run, 3, "log_every=3") == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "steps 2 -> 3" in err and "log_every 1 -> 3" in err
    assert _steps(run)[-1] == "step_0000003" and _logged_steps(run)[-1] == 3


@pytest.mark.parametrize("extra, named", [
    (("model.depth=3",), "model.depth=2 -> 3"),
    (("frames=6",), "frames=4 -> 6"),
    (("flow.objective=teacher_forcing",), "flow.objective='diffusion_forcing' -> 'teacher_forcing'"),
    (("model.warp=false",), "model.warp=True -> False"),  # compared with the stored model's full config
])
def test_a_change_to_the_model_is_refused_naming_the_key(tiny_pipeline, run, capsys, extra, named):
    before = _steps(run)
    assert _resume(tiny_pipeline, run, 4, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "another out=" in err[0], err
    assert _steps(run) == before  # nothing written


def test_other_data_or_another_vae_is_refused(tiny_pipeline, run, tmp_path, capsys):
    other = tmp_path / "other"  # the same path regenerated with other seeds: same config, other content
    tiny_store(other, episodes=3, steps=16, seed=7, task="navigate")
    assert _resume(tiny_pipeline, run, 4, store=other) == 2
    assert "stores" in capsys.readouterr().err

    vae = tmp_path / "vae"
    assert cli(["train-vae", f"store={tiny_pipeline['store']}", f"out={vae}", "steps=1", "batch_size=2",
                "val_windows=1", "warmup=1", "device=cpu", "seed=5", *TINY_VAE]) == 0
    capsys.readouterr()
    args = train_args(tiny_pipeline["store"], vae, run, 4, "model.attention=causal")
    assert cli(args) == 2
    assert "vae " in capsys.readouterr().err
    assert _steps(run) == ["step_0000002"]


def test_latest_naming_a_missing_checkpoint_falls_back_to_the_newest_intact_one(tiny_pipeline, run, capsys):
    assert _resume(tiny_pipeline, run, 4, "save_every=1") == 0
    assert _steps(run) == ["step_0000002", "step_0000003", "step_0000004"]
    shutil.rmtree(run / "checkpoints" / "step_0000004")  # `latest` still names it
    capsys.readouterr()
    assert _resume(tiny_pipeline, run, 5, "save_every=1") == 0
    err = capsys.readouterr().err
    assert "names 'step_0000004', which is missing" in err and "step_0000003" in err
    assert _steps(run) == ["step_0000003", "step_0000004", "step_0000005"]  # resumed at 3, not restarted at 0
    assert 1 not in _logged_steps(run)[2:]


def test_a_run_whose_checkpoints_are_all_broken_is_refused(tiny_pipeline, run, capsys):
    (run / "checkpoints" / "step_0000002" / "meta.json").unlink()
    assert _resume(tiny_pipeline, run, 4) == 2
    assert "none is intact (step_0000002)" in capsys.readouterr().err


def test_a_vae_resume_refuses_another_architecture(tiny_pipeline, tmp_path, capsys):
    vae = tmp_path / "vae"
    shutil.copytree(tiny_pipeline["vae"], vae)
    base = ["train-vae", f"store={tiny_pipeline['store']}", f"out={vae}", "batch_size=4", "val_windows=2",
            "warmup=1", "device=cpu"]
    assert cli([*base, "steps=4", "vae.channels=[8,16,16]", "vae.latent_channels=8"]) == 2
    assert "vae.latent_channels=4 -> 8" in capsys.readouterr().err
    assert cli([*base, "steps=3", "eval_every=3", "save_every=3", *TINY_VAE]) == 0
    assert "steps 2 -> 3" in capsys.readouterr().err
    assert (Path(vae) / "checkpoints" / "step_0000003").is_dir()


def test_fine_tuning_starts_from_the_parents_weights_and_keeps_its_design(tiny_pipeline, tmp_path, capsys):
    """`init=RUN`: a new run on other data starts from the parent's EMA weights (lr 0 leaves them as they were),
    keeps its architecture, vocabulary and objective whatever the command line says (its self-forcing settings are
    its own), records the parent and its
    data (also in what it samples), resumes as any run, even with the parent gone; another VAE is one line."""
    from safetensors.torch import load_file

    from worldsim.model import checkpoint as C
    from worldsim.model.sampler import WorldSampler

    parent_run = tmp_path / "parent"
    shutil.copytree(tiny_pipeline["memory"], parent_run)
    parent = C.resolve(parent_run)
    pmeta, pdigest = C.load_meta(parent), C.digest(parent)
    want = load_file(str(parent / "ema.safetensors"))
    out = tmp_path / "tuned"
    args = train_args(tiny_pipeline["heldout"], tiny_pipeline["vae"], out, 2, f"init={parent_run}",
                      "model.depth=3", "flow.p_pure_noise=0.7", "flow.self_forcing_depth=3", "lr=0")
    # model.depth and flow.p_pure_noise: ignored, the parent's are kept; the self-forcing settings are the run's own
    assert cli(args) == 0
    assert "fine-tuning" in capsys.readouterr().out
    tuned = C.resolve(out)
    meta = C.load_meta(tuned)
    assert meta["spec"] == pmeta["spec"]  # same blocks, memory, vocabulary, action scale
    assert meta["train"]["flow"] == {**pmeta["train"]["flow"], "self_forcing_depth": 3}
    assert meta["train"]["text"] == pmeta["train"]["text"]
    assert meta["init"]["digest"] == pdigest and meta["init"]["step"] == pmeta["step"]
    assert meta["init"]["stores"] == pmeta["stores"] and meta["stores"][0]["digest"] != pmeta["stores"][0]["digest"]
    got = load_file(str(tuned / "model.safetensors"))
    assert all(torch.equal(got[k], want[k]) for k in want)
    made = WorldSampler.load(out).provenance()
    assert made["init_digest"] == pdigest and made["init_stores"] == [s["digest"] for s in pmeta["stores"]]

    shutil.rmtree(parent_run)  # a fine-tuning run resumes from its own checkpoint
    assert cli(train_args(tiny_pipeline["heldout"], tiny_pipeline["vae"], out, 3, f"init={parent_run}",
                          "lr=0")) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert C.load_meta(C.resolve(out))["init"] == meta["init"]

    plain = tmp_path / "plain"  # init= into a run that was not fine-tuned: refused, nothing written
    shutil.copytree(tiny_pipeline["causal"], plain)
    assert cli(train_args(tiny_pipeline["store"], tiny_pipeline["vae"], plain, 4,
                          f"init={tiny_pipeline['memory']}")) == 2
    line = capsys.readouterr().err.strip()
    assert "not fine-tuned" in line and "\n" not in line and _steps(plain) == ["step_0000002"]

    vae = tmp_path / "vae"
    assert cli(["train-vae", f"store={tiny_pipeline['store']}", f"out={vae}", "steps=1", "batch_size=2",
                "val_windows=1", "warmup=1", "device=cpu", "seed=5", *TINY_VAE]) == 0
    capsys.readouterr()
    err = train_args(tiny_pipeline["store"], vae, tmp_path / "other", 2, f"init={tiny_pipeline['memory']}")
    assert cli(err) == 2
    line = capsys.readouterr().err.strip()
    assert "fine-tune with its VAE" in line and "\n" not in line

    # self-forcing on a parent trained with diffusion forcing: one line, nothing written
    bad = tmp_path / "bad"
    assert cli(train_args(tiny_pipeline["heldout"], tiny_pipeline["vae"], bad, 2, f"init={tiny_pipeline['memory']}",
                          "flow.self_forcing=0.5")) == 2
    line = capsys.readouterr().err.strip()
    assert "flow.objective=teacher_forcing" in line and "\n" not in line and not bad.exists()
