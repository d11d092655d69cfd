"""Smoke tests of the `worldsim` command (run as a user would, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest

from datagen.job import run
from datagen.rollout import Job
from store import read_episode


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_help_lists_commands():
    r = _run("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "play" in r.stdout


def test_command_help_shows_the_config():
    r = _run("demo", "--help")
    assert r.returncode == 0 and "train-reward" in r.stdout and "task: navigate" in r.stdout


# the demo's stages at toy sizes: a 32 px store, a VAE and a DiT of a few thousand weights, two steps each
TINY_DEMO = ["demo.generate.episodes=2", "demo.generate.steps=30", "demo.generate.width=32", "demo.generate.height=32",
             "demo.heldout.episodes=1", "demo.heldout.steps=30", "demo.heldout.width=32", "demo.heldout.height=32",
             "demo.train_vae.steps=2", "+demo.train_vae.vae.channels=[8,16,16]", "demo.train_vae.vae.latent_channels=4",
             "demo.train.steps=2", "demo.train.batch_size=2", "demo.train.frames=4", "+demo.model.width=48",
             "+demo.model.depth=2", "+demo.model.heads=2", "+demo.train.text.width=32", "+demo.train.text.depth=1",
             "+demo.train.text.heads=2", "demo.train_reward.steps=2", "demo.train_reward.batch_size=8",
             "demo.dream.episodes=1", "demo.dream.horizon=8", "demo.dream.steps=1", "demo.dream.agents=2",
             "demo.dream.agent_steps=2"]


def test_demo_runs_the_pipeline_and_writes_the_report(tmp_path):
    r = _run("demo", f"out={tmp_path}", *TINY_DEMO, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["rollout_psnr"]) == {"1", "8"} and report["reward_model"] is True
    assert report["dream_steps_per_s"] > 0 and set(report["seconds"]) >= {"generate", "train", "dream"}
    for name in ("side_by_side.mp4", "psnr_vs_horizon.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
    video = imageio.mimread(tmp_path / "side_by_side.mp4")
    assert len(video) == 9 and video[0].shape == (128, 2 * 128 + 8, 3)  # engine | model, 4x, 8 replayed + start
    assert f"outputs: {tmp_path}" in r.stdout
    again = _run("demo", f"out={tmp_path}", *TINY_DEMO, env={"OMP_NUM_THREADS": "1"})  # resumes: nothing retrained
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "report.json").read_text())["rollout_psnr"] == report["rollout_psnr"]


def test_recipe_runs_its_stages_and_reports(tmp_path):
    tiny = [f"recipe.{stage}.{k}" for stage in ("generate", "heldout", "lookback")
            for k in ("episodes=2", "steps=40", "width=32", "height=32")]
    r = _run("recipe", f"out={tmp_path}", *tiny, "recipe.train_vae.steps=2", "recipe.train_vae.batch_size=4",
             "recipe.train_vae.eval_every=2", "recipe.train_vae.vae.latent_channels=4",
             "+recipe.train_vae.vae.channels=[8,16,16]",
             "recipe.train.steps=2", "recipe.train.batch_size=2", "recipe.train.frames=4", "recipe.model.width=48",
             "recipe.model.depth=2", "recipe.model.heads=2", "recipe.eval.windows=2", "recipe.eval.steps=1",
             "recipe.eval.episodes=2", "+recipe.eval.idm_steps=5", "+recipe.eval.attr_steps=0",
             "+recipe.eval.probe_size=16", "+recipe.eval.probe_pairs=64", "+recipe.eval.revisits=2",
             env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"vae_heldout_psnr", "eval", "seconds", "total_minutes"} <= set(report)
    ev = report["eval"]
    assert {"next_frame_psnr", "copy_last_frame_psnr"} <= set(ev["next_frame"]) and "horizons" in ev["rollout"]
    assert "far_model_psnr" in ev["revisit"] or "skipped" in ev["revisit"]
    assert set(report["seconds"]) == {"generate", "heldout", "lookback", "train_vae", "cache_latents", "train", "eval"}
    meta = json.loads((tmp_path / "dit" / "checkpoints" / "step_0000002" / "meta.json").read_text())
    assert meta["spec"]["dit"]["attention"] == "causal"  # the recipe's model overrides reach the DiT
    assert meta["train"]["flow"]["objective"] == "teacher_forcing" and meta["spec"]["prediction"] == "delta"
    assert (tmp_path / "report.md").read_text().startswith("# worldsim recipe report")


def test_play_runs_headless_for_a_few_frames():
    r = _run("play", "env=voxel", "max_frames=3", "width=64", "height=48", env={"SDL_VIDEODRIVER": "dummy"})
    assert r.returncode == 0, r.stderr
    assert "played 3 frames" in r.stdout


def test_user_mistakes_are_one_line_errors_with_exit_status_2():
    for args, needle in ((["demo", "stepz=3"], "stepz"), (["demo", "steps"], "key=value"),
                         (["demo", "demo.dream.steps=0"], "demo.dream.steps must be >= 1"),
                         (["fly"], "unknown command"),
                         (["recipe", "recipe=voxel64_gpu", "recipe.train_minutes=abc", "out=/nonexistent/r"],
                          "recipe.train_minutes must be a number"),
                         (["generate", "task=swim", "episodes=1", "steps=2", "out=memory://x"], "unknown voxel task")):
        r = _run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr


def test_play_physics_runs_headless():
    r = _run("play", "env=physics", "max_frames=3", "width=64", "height=48", env={"SDL_VIDEODRIVER": "dummy"})
    assert r.returncode == 0, r.stderr
    assert "played 3 frames" in r.stdout


def test_export_video_writes_one_episode_and_names_the_valid_range(tmp_path):
    store, out = tmp_path / "s", tmp_path / "video" / "ep1.mp4"
    run(Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": "explore"}, width=32, height=32, steps=12, episodes=2),
        str(store), workers=1)
    r = _run("export-video", str(store), "episode=1", f"out={out}")
    assert r.returncode == 0, r.stderr
    frames = [f for f in imageio.get_reader(out)]  # (H, W, 3) each
    assert len(frames) == len(read_episode(str(store), 1)["frames"])
    assert frames[0].shape[1] == 32 * 12 and frames[0].shape[0] > 32 * 12  # scale 12: 384 px, text panel below
    assert not list(out.parent.glob("*.part.mp4"))
    bad_out = f"out={tmp_path / 'bad.mp4'}"
    for args, needle in (([str(store), "episode=2", bad_out], "episode 2 is not in"),
                         ([str(store), "episode=-1", bad_out], "it holds episodes 0..1"),
                         ([str(tmp_path / "nope"), bad_out], "no zarr store"),
                         ([str(store), f"out={store / 'zarr.json' / 'x.mp4'}"], "is a file, not a folder")):
        bad = _run("export-video", *args)
        assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "bad.mp4").exists()


@pytest.fixture
def command(monkeypatch):
    """Point `worldsim validate` at a stand-in command whose main runs the given function."""
    import types

    from worldsim import cli as cli_module

    def install(body):
        mod = types.ModuleType("stand_in_command")
        mod.main = lambda cfg: body()
        monkeypatch.setitem(sys.modules, "stand_in_command", mod)
        monkeypatch.setitem(cli_module.COMMANDS, "validate", ("stand_in_command", "a stand-in"))
        return cli_module.main

    return install


def test_bad_input_is_one_line_with_exit_2(command, capsys):
    from worldsim.errors import InputError

    def bad_value():
        raise InputError("steps must be positive, got 0")

    def unknown_policy():  # the data layer raises ValueError on purpose: still the user's input
        import numpy as np

        from datagen.policies import RandomPolicy

        RandomPolicy(np.random.default_rng(0), repeat=0)

    for body in (bad_value, unknown_policy):
        assert command(body)(["validate", "path=x"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("worldsim validate: error:"), err


def test_a_bug_keeps_its_traceback(command):
    import numpy as np

    def numpy_bug():
        np.zeros(3).reshape(2, 2)

    def our_bug():
        return int("not a number")

    for body in (numpy_bug, our_bug):
        with pytest.raises(ValueError):
            command(body)(["validate", "path=x"])


def test_values_of_the_wrong_kind_are_one_line_errors_and_create_nothing(tmp_path, capsys):
    from worldsim.cli import main as cli

    for arg, needle in (("steps=abc", "steps='abc' in generate config must be an int"),
                        ("episodes=1e9", "must be an int"), ("seed=nan", "seed=nan in generate config is not a finite"),
                        ("segment_seconds=inf", "not a finite number")):
        out = tmp_path / arg.split("=")[0]
        assert cli(["generate", arg, f"out={out}"]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and not out.exists(), err


def test_recipe_sizes_the_dit_to_its_minutes_by_timing_two_short_runs(tmp_path, monkeypatch):
    """recipe.train_minutes: two throwaway runs (10 and 40 steps) time a step with start-up cancelled; the DiT gets
    as many steps as fit, rounded down to 50; a run already started keeps the steps it was given."""
    import worldsim.cli.recipe as recipe
    from worldsim.errors import InputError

    clock = {"now": 0.0}
    runs = []

    def fake_stage(command, args):  # 7 s of start-up, then 0.25 s per step
        steps = int([a for a in args if a.startswith("steps=")][-1].split("=")[1])  # the last override wins
        out = Path(next(a for a in args if a.startswith("out=")).split("=", 1)[1])
        out.mkdir(parents=True)
        runs.append((command, steps, out))
        clock["now"] += 7.0 + 0.25 * steps

    monkeypatch.setattr(recipe, "run_stage", fake_stage)
    monkeypatch.setattr(recipe.time, "perf_counter", lambda: clock["now"])
    sizing = recipe.size_training(["steps=999", "model.width=48"], 3.0, tmp_path / "calibrate", tmp_path / "dit")
    assert [(c, s) for c, s, _ in runs] == [("train", 10), ("train", 40)]
    assert all(o.parent == tmp_path / "calibrate" for _, _, o in runs) and not (tmp_path / "calibrate").exists()
    assert sizing["seconds_per_step"] == 0.25 and sizing["steps"] == 700  # 180 s / 0.25 s = 720, down to 700
    with pytest.raises(InputError, match="train_minutes must be > 0"):
        recipe.size_training([], 0, tmp_path / "c", tmp_path / "dit")

    import worldsim.model.checkpoint as C

    monkeypatch.setattr(C, "latest", lambda out: out)
    monkeypatch.setattr(C, "resolve", lambda p: p)
    monkeypatch.setattr(C, "load_meta", lambda p, **k: {"train": {"steps": 1250}})
    runs.clear()
    assert recipe.size_training([], 3.0, tmp_path / "c2", tmp_path / "dit") == {"steps": 1250, "minutes": 3.0,
                                                                                  "resumed": True}
    assert runs == []  # resumed: no calibration
