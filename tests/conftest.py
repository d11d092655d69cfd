"""Shared fixtures (helpers live in voxel_helpers.py, importable because pytest puts tests/ on the path)."""

from __future__ import annotations

import pytest
from voxel_helpers import make_voxel


@pytest.fixture
def voxel():
    env = make_voxel(animals=False, start_hours=12.0)
    env.reset(seed=1)
    yield env
    env.close()
