"""Smoke tests of the `worldsim` command (run as a user would, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v2 as imageio

from datagen.job import run
from datagen.rollout import Job
from datagen.store import read_episode


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_help_lists_commands():
    r = _run("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "play" in r.stdout


def test_command_help_shows_the_config():
    r = _run("demo", "--help")
    assert r.returncode == 0 and "steps: 300" in r.stdout and "worldsim/Voxel-v0" in r.stdout


def test_demo_writes_video_sheet_and_events(tmp_path):
    r = _run("demo", f"out={tmp_path}", "steps=30", "width=48", "height=32")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "voxel.mp4").stat().st_size > 0
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        assert "type" in json.loads(line)
    assert f"outputs: {tmp_path}" in r.stdout


def test_play_runs_headless_for_a_few_frames():
    r = _run("play", "env=voxel", "max_frames=3", "width=64", "height=48", env={"SDL_VIDEODRIVER": "dummy"})
    assert r.returncode == 0, r.stderr
    assert "played 3 frames" in r.stdout


def test_user_mistakes_are_one_line_errors_with_exit_status_2():
    for args, needle in ((["demo", "stepz=3"], "stepz"), (["demo", "steps"], "key=value"),
                         (["demo", "steps=-1"], "steps must be positive"), (["fly"], "unknown command"),
                         (["demo", "env.kwargs.task=swim", "steps=2"], "unknown voxel task")):
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
                         ([str(store), f"out={store / 'zarr.json' / 'x.mp4'}"], "cannot write out=")):
        bad = _run("export-video", *args)
        assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "bad.mp4").exists()
