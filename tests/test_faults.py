"""Faults a careful user runs into: a failed command leaves `out` as it found it, disk full and the GL size limit are
one line, half-written checkpoints and output paths that are folders are named, and paths with spaces and letters
outside ASCII work in every command."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from wm_helpers import TINY_MODEL, TINY_VAE

import store as S
from worldsim.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_line(capsys, needle: str) -> str:
    """The command's one error line (progress bars aside); no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("worldsim ")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["seed=-1"], "seed must be >= 0, got -1"),
    (["episodes=1000000000"], "needs at least"),
    (["width=40000", "workers=1"], "over this machine's OpenGL limit: at most"),
    (["width=40000", "workers=2", "episodes=3"], "over this machine's OpenGL limit: at most"),
])
def test_a_failed_generate_leaves_out_as_it_found_it(tmp_path, capsys, args, needle):
    out = tmp_path / "store"
    assert cli(["generate", f"out={out}", "steps=4", *args]) == 2
    _one_line(capsys, needle)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no store, no lock file
    assert cli(["generate", f"out={out}", "steps=4", "episodes=1", "width=16", "height=16"]) == 0  # the fix works


def test_a_failed_generate_keeps_a_folder_that_was_there(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    assert cli(["generate", f"out={out}", "steps=4", "seed=-1"]) == 2
    assert out.is_dir()


@pytest.fixture()
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_generate_is_one_line_and_a_rerun_completes(small_disk, tmp_path):
    out = small_disk / "st"
    args = ["worldsim", "generate", f"out={out}", "episodes=8", "steps=40", "workers=1"]
    r = subprocess.run(args, capture_output=True, text=True)
    lines = [line for line in r.stderr.splitlines() if "error" in line]
    assert r.returncode == 1 and len(lines) == 1 and "no space left on the device writing" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and str(out) in lines[0]
    kept = len(S.staged_episodes(S.open_root(str(out), "r")))
    assert kept >= 1  # what was complete is kept
    subprocess.run(["mount", "-o", "remount,size=16M", str(small_disk)], check=True)
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    reference = tmp_path / "reference"
    assert cli(["generate", f"out={reference}", "episodes=8", "steps=40", "workers=1"]) == 0
    assert json.loads(r.stdout.splitlines()[-1])["digest"] == S.open_store(str(reference)).attrs["digest"]


def test_disk_full_during_a_checkpoint_save_names_the_space_needed(small_disk, tiny_pipeline, capsys):
    out = small_disk / "dit"
    args = ["train", f"store={tiny_pipeline['store']}", f"vae={tiny_pipeline['vae']}", f"out={out}", "steps=1",
            "frames=4", "batch_size=2", "device=cpu", "model.width=96", "model.depth=4", "model.heads=2",
            *TINY_MODEL[3:]]
    assert cli(args) == 2
    line = _one_line(capsys, "no space left on the device for checkpoint step_0000001")
    assert "it needs about" in line and "MB is free" in line
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith((".tmp", "step_"))]


def test_a_checkpoint_without_its_keys_and_outputs_that_are_folders_are_named(tiny_pipeline, tmp_path, capsys):
    ck = tmp_path / "ck"
    shutil.copytree(Path(tiny_pipeline["causal"]) / "checkpoints" / "step_0000002", ck)
    meta = json.loads((ck / "meta.json").read_text())
    del meta["spec"]
    (ck / "meta.json").write_text(json.dumps(meta))
    assert cli(["sample", f"ckpt={ck}", "mode=t2v", f"out={tmp_path / 'a.mp4'}"]) == 2
    _one_line(capsys, "meta.json lacks 'spec': not a complete world-model checkpoint")

    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    for args in (["export-video", str(tiny_pipeline["store"]), f"out={folder}"],
                 ["sample", f"ckpt={tiny_pipeline['causal']}", "mode=t2v", f"out={folder}"]):
        assert cli(args) == 2
        _one_line(capsys, f"out={folder} is a folder; name a file in it")


def test_paths_with_spaces_and_accents_work_in_every_command(tiny_pipeline, tmp_path, capsys):
    root = tmp_path / "my runs" / "été ü"
    store = root / "data set"
    assert cli(["generate", f"out={store}", "episodes=2", "steps=8", "width=32", "height=32", "task=navigate"]) == 0
    assert cli(["validate", str(store)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["valid"]
    assert cli(["info", str(store)]) == 0
    assert cli(["export-video", str(store), f"out={root / 'épisode 0.mp4'}"]) == 0
    assert (root / "épisode 0.mp4").is_file()
    vae = root / "the vae"
    assert cli(["train-vae", f"store={store}", f"out={vae}", "steps=1", "batch_size=2", "val_episodes=1",
                "val_windows=1", "warmup=1", "device=cpu", *TINY_VAE]) == 0
    latents = root / "lat ents"
    assert cli(["cache-latents", f"store={store}", f"vae={vae}", f"out={latents}"]) == 0
    dit = root / "world model"
    assert cli(["train", f"store={latents}", f"vae={vae}", f"out={dit}", "steps=1", "frames=4", "batch_size=2",
                "warmup=1", "device=cpu", *TINY_MODEL]) == 0
    clip = root / "dream clip.mp4"
    assert cli(["sample", f"ckpt={dit}", "mode=rollout", f"store={store}", "episode=0", "context=2", "frames=2",
                "steps=1", f"out={clip}"]) == 0
    assert clip.is_file() and Path(f"{clip}.json").is_file()
    capsys.readouterr()
    # what the shell passes for  out="/a/it's here"  and a trailing backslash are kept as typed
    odd = tmp_path / "it's (1), a=b"
    assert cli(["generate", f"out={odd}", "episodes=1", "steps=4", "width=16", "height=16"]) == 0
    assert S.open_store(str(odd)).attrs["finalized"]


def test_training_into_a_store_or_a_folder_of_other_files_is_refused(tiny_pipeline, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(tiny_pipeline["store"], store)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plan.txt").write_text("mine")
    for out, needle in ((store, "is a zarr store (a dataset), not a run directory"),
                        (notes, "holds files that are not a run's (plan.txt)")):
        assert cli(["train-vae", f"store={tiny_pipeline['store']}", f"out={out}", "steps=1", "device=cpu"]) == 2
        _one_line(capsys, needle)
    assert sorted(p.name for p in store.iterdir()) == sorted(p.name for p in Path(tiny_pipeline["store"]).iterdir())
    assert [p.name for p in notes.iterdir()] == ["plan.txt"]
