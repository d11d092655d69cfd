"""Shared fixtures (helpers live in voxel_helpers.py, importable because pytest puts tests/ on the path)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from voxel_helpers import make_voxel

# signing keys of the test session (worldsim/provenance.py makes them on first use), never the user's own
os.environ["WORLDSIM_C2PA_DIR"] = tempfile.mkdtemp(prefix="worldsim-c2pa-")
for _name in ("WORLDSIM_C2PA_CERT", "WORLDSIM_C2PA_KEY", "WORLDSIM_C2PA_TRUST", "WORLDSIM_SIGN"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def voxel():
    env = make_voxel(animals=False, start_hours=12.0)
    env.reset(seed=1)
    yield env
    env.close()


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> dict[str, Path]:
    """One tiny pipeline for every test that needs trained files, built once per session: a navigate store (3
    episodes x 16 steps at 32 px, seed 0), a held-out navigate store of other seeds (2 x 16, seed 100), a VAE, and
    a frame-causal, a full-attention and a frame-causal DiT with memory trained for 2 steps (untrained weights are
    enough: these tests are about behaviour, not skill). No reward model: a test that needs one copies a run
    (`shutil.copytree`) and trains it there. Tests must not write into these folders."""
    from wm_helpers import TINY_VAE, tiny_store, train_args

    from worldsim.cli import main as cli

    root = tmp_path_factory.mktemp("pipeline")
    paths = {name: root / name for name in ("store", "heldout", "vae", "causal", "full", "memory")}
    tiny_store(paths["store"], episodes=3, steps=16, seed=0, task="navigate")
    tiny_store(paths["heldout"], episodes=2, steps=16, seed=100, task="navigate")
    assert cli(["train-vae", f"store={paths['store']}", f"out={paths['vae']}", "steps=2", "batch_size=4",
                "eval_every=2", "save_every=2", "val_windows=2", "warmup=1", "device=cpu", *TINY_VAE]) == 0
    assert cli(train_args(paths["store"], paths["vae"], paths["causal"], 2, "model.attention=causal")) == 0
    assert cli(train_args(paths["store"], paths["vae"], paths["full"], 2)) == 0
    assert cli(train_args(paths["store"], paths["vae"], paths["memory"], 2, "model.attention=causal",
                          "model.memory=4")) == 0
    return paths
