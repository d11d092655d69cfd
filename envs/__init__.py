"""Game engines as gymnasium environments. Importing this package registers `worldsim/Voxel-v0`."""

from typing import Any

import numpy as np
from gymnasium.envs.registration import register, registry

if "worldsim/Voxel-v0" not in registry:
    register(id="worldsim/Voxel-v0", entry_point="envs.voxel.env:VoxelEnv")

if "worldsim/Physics-v0" not in registry:
    register(id="worldsim/Physics-v0", entry_point="envs.physics.env:PhysicsEnv")


def positive_int(name: str, value: Any) -> int:
    """`value` as an int, or a ValueError naming `name` when it is not a positive integer (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make(env_id: str, **kwargs: Any) -> Any:
    """`gymnasium.make` for worldsim engines, with an error naming the known ids for an unknown one."""
    import gymnasium as gym

    if env_id not in registry:
        known = sorted(k for k in registry if k.startswith("worldsim/"))
        raise ValueError(f"unknown env id {env_id!r}; known: {known}")
    return gym.make(env_id, **kwargs)
