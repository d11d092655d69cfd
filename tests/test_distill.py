"""`worldsim distill` (worldsim/train/distill.py): the student starts from the teacher's blocks, learns to draw in
one step what the teacher draws in several, is deterministic, names its teacher, and steps in DreamEnv."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from wm_helpers import one_line_error, train_args

from worldsim.cli import main as cli
from worldsim.model import checkpoint as C
from worldsim.train.distill import load_teacher, spread, student_from, teacher_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEACHER = ("model.attention=causal", "flow.objective=teacher_forcing", "flow.prediction=delta",
           "flow.p_pure_noise=0.5", "model.depth=4")


@pytest.fixture(scope="module")
def teacher(tiny_pipeline, tmp_path_factory):
    """A tiny teacher-forced world model (4 blocks, 30 steps) on the pipeline's store and VAE."""
    run = tmp_path_factory.mktemp("distill") / "teacher"
    assert cli(train_args(tiny_pipeline["store"], tiny_pipeline["vae"], run, 30, *TEACHER)) == 0
    return run


def _distill(teacher, out, *extra: str) -> dict:
    args = ["distill", f"ckpt={teacher}", f"out={out}", "steps=40", "batch_size=4", "lr=0.002", "warmup=2",
            "log_every=5", "save_every=40", "device=cpu", "teacher_steps=4", "depth=2", *extra]
    assert cli(args) == 0
    return C.load_meta(C.resolve(out))


def test_spread_keeps_first_and_last():
    from worldsim.train.distill import default_depth

    assert spread(6, 3) == [0, 2, 5] and spread(4, 2) == [0, 3] and spread(4, 1) == [3] and spread(3, 3) == [0, 1, 2]
    assert spread(6, 2) == [0, 5] and [default_depth(d) for d in (1, 4, 6, 12, 28)] == [1, 1, 2, 4, 9]


def test_student_starts_from_the_teachers_blocks(teacher):
    t, _, _, _ = load_teacher(teacher, torch.device("cpu"))
    s, picked = student_from(t, 2)
    assert picked == [0, 3] and len(s.dit.blocks) == 2 and s.spec.dit.depth == 2
    ts, ss = t.state_dict(), s.state_dict()
    for k, v in ss.items():
        if k.startswith("dit.blocks."):
            i, rest = k.split(".", 3)[2], k.split(".", 3)[3]
            assert torch.equal(v, ts[f"dit.blocks.{picked[int(i)]}.{rest}"])
        else:
            assert torch.equal(v, ts[k]), k


def test_student_learns_the_teachers_many_step_frames_in_one_step(teacher, tiny_pipeline, tmp_path):
    meta = _distill(teacher, tmp_path / "s1")
    assert meta["teacher"]["digest"] == C.digest(C.resolve(teacher)) and meta["teacher"]["steps"] == 4
    assert meta["spec"]["dit"]["depth"] == 2 and meta["train"]["flow"]["p_pure_noise"] == 1.0
    rows = [json.loads(x) for x in (tmp_path / "s1" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss_teacher" in r]
    first, last = rows[0]["loss_teacher"], rows[-1]["loss_teacher"]
    assert last < 0.5 * first, (first, last)
    # closer to the teacher's 4-step frames than to the real ones: it learned the teacher, not the data
    assert last < rows[-1]["loss_real"]
    # same seed and config, same bytes
    _distill(teacher, tmp_path / "s2")
    a, b = (C.resolve(tmp_path / n) / "ema.safetensors" for n in ("s1", "s2"))
    assert a.read_bytes() == b.read_bytes()


def test_student_one_step_output_is_close_to_teacher_many_steps(teacher, tiny_pipeline, tmp_path):
    """Directly: on held-out windows, the student's 1 step vs the teacher's 4 steps from the same noise and past,
    against the teacher's 1 step (the student must beat the shortcut it replaces or match it)."""
    from worldsim.model.world_model import ModelSpec, WorldModel
    from worldsim.train.data import StoreSet

    _distill(teacher, tmp_path / "s")
    t, vae, tmeta, _ = load_teacher(teacher, torch.device("cpu"))
    ck = C.resolve(tmp_path / "s")
    s = WorldModel(ModelSpec.from_dict(C.load_meta(ck)["spec"]))
    s.load_state_dict(C.load_tensors(ck, "ema"))
    s.eval()
    held = StoreSet([str(tiny_pipeline["heldout"])], 4, "all")
    batch = held.batch(np.random.default_rng(0), 4)
    from worldsim.model.frames import to_model

    with torch.no_grad():
        z = vae.encode(to_model(batch["frames"]))
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(z.shape, generator=g)
        texts = [""] * len(z)
        cond_t = t.conditioning(texts, batch["actions"])
        cond_s = s.conditioning(texts, batch["actions"])
        tc = torch.zeros(z.shape[:2])
        many = teacher_frames(t, noise, cond_t, z, tc, 4, "fp32")
        one_t = teacher_frames(t, noise, cond_t, z, tc, 1, "fp32")
        one_s = s(noise, torch.ones(z.shape[:2]), cond_s, clean=z, t_clean=tc, x0=True)
    err_student = float((one_s - many).pow(2).mean())
    err_shortcut = float((one_t - many).pow(2).mean())
    spread_ = float(many.var())
    assert err_student < 0.25 * spread_, (err_student, spread_)
    assert err_student < err_shortcut, (err_student, err_shortcut)


def test_student_is_a_world_model_that_dreams_in_one_step(teacher, tiny_pipeline, tmp_path):
    from worldsim.dream.env import DreamEnv
    from worldsim.model.light_decoder import find_decoder
    from worldsim.model.sampler import WorldSampler

    _distill(teacher, tmp_path / "s")
    s = WorldSampler.load(tmp_path / "s")
    assert s.dream_steps == 1 and len(s.model.dit.blocks) == 2
    # the teacher's light decoder serves the student (same VAE)
    assert cli(["distill-decoder", f"ckpt={teacher}", f"store={tiny_pipeline['store']}", "steps=2", "batch_size=4",
                "val_frames=4", "device=cpu", "decoder.width=16"]) == 0
    assert find_decoder(tmp_path / "s") == find_decoder(teacher) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        env = DreamEnv.from_checkpoint(tmp_path / "s", max_episode_steps=None,
                                       store=str(tiny_pipeline["heldout"]))
    assert env.sampler.light is not None
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8


def test_distill_refuses_what_it_cannot_distil(tiny_pipeline, teacher, tmp_path, capsys):
    err = one_line_error(capsys, cli, ["distill", f"ckpt={tiny_pipeline['full']}", f"out={tmp_path / 'x'}"])
    assert "teacher_forcing" in err
    err = one_line_error(capsys, cli, ["distill", f"ckpt={teacher}", "depth=9", f"out={tmp_path / 'y'}"])
    assert "depth=9" in err
    err = one_line_error(capsys, cli, ["distill", f"ckpt={teacher}", "steps=0", f"out={tmp_path / 'z'}"])
    assert "steps must be positive" in err
    err = one_line_error(capsys, cli, ["distill", f"out={tmp_path / 'z'}"])
    assert "ckpt is required" in err


def test_dream_env_dreams_with_the_student_by_default(teacher, tmp_path):
    """A student in `<run>/student` distilled from this very checkpoint is DreamEnv's default; student="none", more
    than one Euler step, or a student of another checkpoint keep the teacher."""
    import shutil

    from worldsim.dream.env import DreamEnv, DreamVectorEnv
    from worldsim.model.sampler import find_student

    run = tmp_path / "teacher"
    shutil.copytree(teacher, run)
    assert find_student(run) is None
    assert cli(["distill", f"ckpt={run}", "steps=2", "batch_size=2", "device=cpu", "save_every=2"]) == 0
    assert find_student(run) == C.resolve(run / "student")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        auto = DreamEnv.from_checkpoint(run, max_episode_steps=None)
        none = DreamEnv.from_checkpoint(run, max_episode_steps=None, student="none")
        many = DreamVectorEnv.from_checkpoint(run, num_envs=2, steps=4, max_episode_steps=None)
    assert len(auto.sampler.model.dit.blocks) == 1 and auto.sampler.meta["teacher"]["digest"] == C.digest(
        C.resolve(run))
    assert "teacher_digest" in auto.sampler.provenance()
    assert len(none.sampler.model.dit.blocks) == 4 and len(many.sampler.model.dit.blocks) == 4
    # a student of another checkpoint is not this one's
    other = tmp_path / "other"
    shutil.copytree(teacher, other)
    shutil.copytree(run / "student", other / "student")
    (C.resolve(other) / "ema.safetensors").write_bytes((C.resolve(other) / "model.safetensors").read_bytes())
    assert find_student(other) is None
    with pytest.raises(Exception, match="student=nowhere"):
        DreamEnv.from_checkpoint(run, student="nowhere")


def test_weights_of_another_architecture_are_a_one_line_error(tiny_pipeline, tmp_path, capsys):
    import shutil

    run = tmp_path / "mixed"
    shutil.copytree(tiny_pipeline["causal"], run)
    (C.resolve(run) / "ema.safetensors").write_bytes((C.resolve(tiny_pipeline["memory"]) / "ema.safetensors")
                                                     .read_bytes())
    err = one_line_error(capsys, cli, ["sample", f"ckpt={run}", "mode=t2v", "frames=2", "steps=1",
                                       f"out={tmp_path / 'x.mp4'}"])
    assert "does not fit this version" in err and "patch_in" in err


def test_sample_draws_with_the_models_own_steps_by_default(teacher, tiny_pipeline, tmp_path):
    """`worldsim sample` without steps=: a teacher-forced model trained at pure noise draws each frame in one Euler
    step (as DreamEnv does), a diffusion-forcing model in 16; the provenance says which; steps=N still wins."""
    cases = ((teacher, [], 1), (tiny_pipeline["causal"], [], 16), (teacher, ["steps=3"], 3))
    for i, (ck, extra, want) in enumerate(cases):
        out = tmp_path / f"r{i}.mp4"
        assert cli(["sample", f"ckpt={ck}", "mode=rollout", f"store={tiny_pipeline['heldout']}", "context=2",
                    "frames=4", f"out={out}", "device=cpu", *extra]) == 0
        assert json.loads(out.with_name(out.name + ".json").read_text())["steps"] == want
