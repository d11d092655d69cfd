"""Signed provenance (worldsim/provenance.py, `worldsim provenance`): what writes a manifest, what it says, and that a
file changed after signing, an unsigned file and a foreign signer are each reported as such."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldsim import provenance as P
from worldsim.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _flip_pixel_bytes(path: Path, out: Path) -> None:
    """Change a few bytes of the picture data (PNG IDAT / MP4 mdat) and keep everything else, the manifest too."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"IDAT" if path.suffix == ".png" else b"mdat") + 40
    raw[at : at + 4] = bytes(b ^ 0x5A for b in raw[at : at + 4])
    out.write_bytes(bytes(raw))


def test_sampled_video_and_picture_carry_what_they_were_made_from(tiny_pipeline, tmp_path):
    from worldsim.model.sampler import WorldSampler

    ck = tiny_pipeline["causal"]
    mp4, png = tmp_path / "v.mp4", tmp_path / "f.png"
    for out, mode in ((mp4, "t2v"), (png, "t2i")):
        assert cli(["sample", f"ckpt={ck}", f"mode={mode}", "frames=4", "steps=1", "seed=7", "prompt=a forest",
                    f"out={out}", "device=cpu"]) == 0
    s = WorldSampler.load(ck)
    for out in (mp4, png):
        v = P.verify(out)
        assert v.signed and v.intact and v.state == "Trusted" and not v.tampered and not v.problems
        assert v.source_type == P.GENERATED
        made = v.made_from
        assert made["checkpoint_digest"] == s.digest and made["prompt"] == "a forest" and made["seed"] == 7
        assert made["stores"] == [x["digest"] for x in s.meta["stores"]] and made["stores"]
        # the JSON beside the file says the same
        assert json.loads(out.with_name(out.name + ".json").read_text())["checkpoint_digest"] == s.digest
    r = _cli("provenance", str(mp4))
    assert r.returncode == 0 and "intact, signed by this machine's worldsim root" in r.stdout
    assert "trainedAlgorithmicMedia" in r.stdout and s.digest in r.stdout, r.stdout


def test_changed_stripped_and_unsigned_files_are_reported(tiny_pipeline, tmp_path):
    ck = tiny_pipeline["causal"]
    mp4, png = tmp_path / "v.mp4", tmp_path / "f.png"
    assert cli(["sample", f"ckpt={ck}", "mode=t2v", "frames=4", "steps=1", f"out={mp4}", "device=cpu"]) == 0
    assert cli(["sample", f"ckpt={ck}", "mode=t2i", "steps=1", f"out={png}", "device=cpu"]) == 0
    for src in (mp4, png):
        bad = tmp_path / f"changed{src.suffix}"
        _flip_pixel_bytes(src, bad)
        v = P.verify(bad)
        assert v.signed and not v.intact and v.tampered, v.problems
        r = _cli("provenance", str(bad))
        assert r.returncode == 1 and "CHANGED AFTER SIGNING" in r.stdout, r.stdout
    # pixels edited by a program that drops the manifest: the file is simply unsigned now
    edited = tmp_path / "edited.png"
    pic = np.asarray(Image.open(png)).copy()
    pic[0, 0] ^= 255
    Image.fromarray(pic).save(edited)
    assert not P.verify(edited).signed
    r = _cli("provenance", f"path=[{edited},{png}]", "json=true")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 1 and [x["signed"] for x in rows] == [False, True] and rows[1]["intact"]
    bad = _cli("provenance", str(tmp_path / "missing.mp4"))
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_engine_export_is_algorithmic_media_with_the_store_digest(tiny_pipeline, tmp_path):
    from store import validate

    out = tmp_path / "ep.mp4"
    assert cli(["export-video", str(tiny_pipeline["store"]), "episode=1", f"out={out}"]) == 0
    v = P.verify(out)
    assert v.intact and v.source_type == P.RENDERED
    assert v.made_from["store_digest"] == validate(str(tiny_pipeline["store"]))["digest"]
    assert v.made_from["episode"] == 1 and v.made_from["engine"] == "worldsim/Voxel-v0"


def test_keys_are_made_once_private_and_replaceable(tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    paths = P.ensure_keys(keys)
    assert oct(paths["key"].stat().st_mode & 0o777) == "0o600"
    before = paths["chain"].read_bytes()
    assert P.ensure_keys(keys)["chain"].read_bytes() == before  # made once
    # a user's own chain (another root): intact, but not trusted here until its root is named
    own = P.ensure_keys(tmp_path / "own")
    pic = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(pic)
    monkeypatch.setenv("WORLDSIM_C2PA_CERT", str(own["chain"]))
    monkeypatch.setenv("WORLDSIM_C2PA_KEY", str(own["key"]))
    assert P.sign(pic, P.RENDERED, {"store_digest": "x"})
    v = P.verify(pic)
    assert v.intact and v.state == "Valid" and "not in this machine's trust list" in v.summary()
    monkeypatch.setenv("WORLDSIM_C2PA_TRUST", str(own["root"]))
    assert P.verify(pic).state == "Trusted"
    monkeypatch.delenv("WORLDSIM_C2PA_KEY")
    with pytest.raises(P.InputError, match="set both"):
        P.sign(pic, P.RENDERED, {})
    monkeypatch.setenv("WORLDSIM_SIGN", "0")
    off = tmp_path / "off.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(off)
    assert not P.sign(off, P.GENERATED, {}) and not P.verify(off).signed


def test_dream_env_recordings_are_signed(tiny_pipeline, tmp_path):
    import warnings

    import imageio.v2 as imageio

    from worldsim.dream.env import DreamEnv
    from worldsim.dream.wrappers import RecordDream

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        env = RecordDream(DreamEnv.from_checkpoint(tiny_pipeline["causal"], max_episode_steps=3,
                                                   store=str(tiny_pipeline["heldout"])), str(tmp_path), every=2)
    for _ in range(3):  # episodes 0, 1, 2: 0 and 2 recorded
        env.reset(seed=11)
        env.action_space.seed(0)
        done = False
        while not done:
            *_, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc
    env.close()
    assert [p.rsplit("/", 1)[1] for p in env.written] == ["dream_0.mp4", "dream_2.mp4"]
    v = P.verify(env.written[0])
    assert v.intact and v.source_type == P.GENERATED
    made = v.made_from
    assert made["seed"] == 11 and made["steps_taken"] == 3 and len(made["actions_sha256"]) == 64
    assert made["checkpoint_digest"] == env.unwrapped.sampler.digest
    with imageio.get_reader(env.written[0]) as r:
        assert len([f for f in r]) == 4  # the reset frame and three dreamed ones
    with pytest.raises(Exception, match="every must be"):
        RecordDream(env.env, str(tmp_path), every=0)


def test_unwritable_key_folder_is_one_line_and_keeps_the_file(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("WORLDSIM_C2PA_DIR", str(blocker / "keys"))
    pic = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(pic)
    with pytest.raises(P.InputError, match="WORLDSIM_SIGN=0"):
        P.sign(pic, P.GENERATED, {})
    assert pic.is_file() and not P.verify(pic).signed
