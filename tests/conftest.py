"""Shared fixtures (helpers live in voxel_helpers.py, importable because pytest puts tests/ on the path)."""

from __future__ import annotations

import pytest
from voxel_helpers import make_voxel


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
