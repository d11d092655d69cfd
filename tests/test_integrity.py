"""Integrity on read: every chunk is written, a missing chunk is an error for every reader (never zeros), training
verifies the digest it records, and validate checks the action spec and accepts latent stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import store as S
from store.windows import WindowReader
from worldsim.cli import main as cli
from worldsim.train.data import StoreSet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHUNK = "b_32x32/data/frames/c/0/0/0/0"


def _copy(src: Path, dst: Path) -> str:
    shutil.copytree(src, dst)
    return str(dst)


def _arrays(group: zarr.Group):
    for _, arr in group.arrays():
        yield arr
    for _, sub in group.groups():
        yield from _arrays(sub)


def test_every_chunk_is_written_even_all_zero_ones(tiny_pipeline):
    root = S.open_store(str(tiny_pipeline["store"]))
    assert root.attrs[S.ALL_CHUNKS] is True
    arrays = list(_arrays(root))
    assert any(not arr[...].any() for arr in arrays)  # e.g. `truncated`: all zeros, zarr would skip its chunks
    for arr in arrays:
        assert arr.nchunks_initialized == arr.nchunks, arr.path


def test_a_deleted_chunk_is_an_error_for_every_reader(tiny_pipeline, tmp_path, capsys):
    from worldsim.dream.env import DreamEnv

    url = _copy(tiny_pipeline["store"], tmp_path / "damaged")
    (Path(url) / CHUNK).unlink()
    with pytest.raises(S.MissingChunk, match=f"chunk {CHUNK} is missing"):
        S.read_episode(url, 0)
    with pytest.raises(S.MissingChunk):
        WindowReader(url, 4)  # small stores are decoded whole into memory when opened
    with pytest.raises(S.MissingChunk):
        WindowReader(url, 4, memory_limit=0).read(0)  # or chunk by chunk
    with pytest.raises(S.MissingChunk):
        S.verify_digest(url)
    with pytest.warns(UserWarning, match="no reward model"):
        env = DreamEnv.from_checkpoint(tiny_pipeline["causal"], store=url, precision="fp32")
    with pytest.raises(S.MissingChunk):
        env.reset(seed=0)

    capsys.readouterr()
    assert cli(["validate", url]) == 1
    assert f"chunk {CHUNK} is missing" in capsys.readouterr().err
    for args in (["export-video", url, f"out={tmp_path / 'v.mp4'}"],
                 ["train-vae", f"store={url}", f"out={tmp_path / 'vae'}", "steps=1", "device=cpu"]):
        assert cli(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"chunk {CHUNK} is missing" in err[0], err
    assert not (tmp_path / "v.mp4").exists() and not (tmp_path / "vae").exists()


def test_training_refuses_a_store_whose_content_no_longer_matches_its_digest(tiny_pipeline, tmp_path, capsys):
    url = _copy(tiny_pipeline["store"], tmp_path / "modified")
    root = zarr.open_group(url, mode="r+")
    root["b_32x32/data/rewards"][3] = 5.0  # every chunk still there, the content changed
    assert S.read_episode(url, 0)["rewards"][3] == 5.0
    with pytest.raises(S.StoreError, match="does not match the recorded"):
        S.verify_digest(url)
    for args in (["train-vae", f"store={url}", f"out={tmp_path / 'vae'}", "steps=1", "device=cpu"],
                 ["train", f"store={url}", f"vae={tiny_pipeline['vae']}", f"out={tmp_path / 'dit'}", "steps=1"],
                 ["cache-latents", f"store={url}", f"vae={tiny_pipeline['vae']}", f"out={tmp_path / 'lat'}"]):
        assert cli(args) == 2, args
        assert "does not match the recorded" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("vae", "dit", "lat"))


def test_a_store_of_an_older_worldsim_is_read_but_its_damage_is_caught_by_the_digest(tiny_pipeline, tmp_path):
    """Before every chunk was written, a missing chunk could mean fill values: readers cannot tell, the digest can."""
    url = _copy(tiny_pipeline["store"], tmp_path / "old")
    root = zarr.open_group(url, mode="r+")
    root.attrs.update({S.ALL_CHUNKS: False})
    (Path(url) / CHUNK).unlink()
    assert not S.read_episode(url, 0)["frames"].any()  # zarr's fill value: what older stores cannot rule out
    assert S.validate(str(tiny_pipeline["store"]))["all_chunks_written"] is True
    with pytest.raises(S.StoreError, match="does not match the recorded"):
        S.verify_digest(url)
    assert len(StoreSet([url], 4, "all").readers) == 1  # opening alone does not read every chunk


@pytest.mark.parametrize("spec, match", [
    ("forward,camera", "must be an object describing the action space"),
    ({"type": "Teleport"}, "describes no valid action space"),
    ("few_keys", "flat_keys \\['forward', 'back', 'left'\\] do not cover"),
    ("no_hotbar", "data/actions has shape \\(\\d+, 12\\), but the action_spec describes 11 columns"),
])
def test_validate_checks_the_action_spec_against_the_columns(tiny_pipeline, tmp_path, spec, match):
    url = _copy(tiny_pipeline["store"], tmp_path / "spec")
    root = zarr.open_group(url, mode="r+")
    if spec in ("few_keys", "no_hotbar"):
        case, spec = spec, dict(root.attrs["action_spec"])
        if case == "few_keys":
            spec["flat_keys"] = spec["flat_keys"][:3]
        else:  # a valid spec of another game: one column fewer
            spec["spaces"] = {k: v for k, v in spec["spaces"].items() if k != "hotbar"}
            spec["flat_keys"] = [k for k in spec["flat_keys"] if k != "hotbar"]
    root.attrs.update({"action_spec": spec})
    with pytest.raises(S.StoreError, match=match):
        S.validate(url)


def test_validate_refuses_non_finite_actions_and_accepts_latent_stores(tiny_pipeline, tmp_path, capsys):
    url = _copy(tiny_pipeline["store"], tmp_path / "nan")
    zarr.open_group(url, mode="r+")["b_32x32/data/rewards"][5] = np.nan
    with pytest.raises(S.StoreError, match="rewards has a non-finite value \\(row 5\\)"):
        S.validate(url)

    lat = tmp_path / "latents"
    assert cli(["cache-latents", f"store={tiny_pipeline['store']}", f"vae={tiny_pipeline['vae']}", f"out={lat}"]) == 0
    capsys.readouterr()
    assert cli(["validate", str(lat)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["valid"] and summary["all_chunks_written"] and summary["frames"] == S.validate(
        str(tiny_pipeline["store"]))["frames"]
