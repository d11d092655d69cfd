"""Helpers for voxel tests: small envs, a flat arena built inside a generated world, actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers worldsim/Voxel-v0)
from envs.voxel.actions import noop
from envs.voxel.blocks import Block


def make_voxel(**kwargs):
    kwargs.setdefault("width", 32)
    kwargs.setdefault("height", 24)
    return gym.make("worldsim/Voxel-v0", **kwargs).unwrapped


def flat_arena(env, radius: int = 6, ground: int = 30, block: Block = Block.STONE) -> tuple[int, int]:
    """Flatten the world around the player: `block` up to `ground`, air above; put the player on it, at rest.

    Returns the (x, z) block column the player stands on.
    """
    w = env.unwrapped.world
    px, pz = int(np.floor(env.unwrapped.player.pos[0])), int(np.floor(env.unwrapped.player.pos[2]))
    for x in range(px - radius, px + radius + 1):
        for z in range(pz - radius, pz + radius + 1):
            w.ensure([(x >> 4, z >> 4)])
            col = w.chunks[(x >> 4, z >> 4)]
            col[x & 15, : ground + 1, z & 15] = block
            col[x & 15, ground + 1 :, z & 15] = Block.AIR
            w.edited.add((x >> 4, z >> 4))
            w.dirty.add((x >> 4, z >> 4))
    p = env.unwrapped.player
    p.pos = np.array([px + 0.5, ground + 1.0, pz + 0.5])
    p.vel = [0.0, 0.0, 0.0]
    p.yaw, p.pitch, p.on_ground, p.fall_from = 0.0, 0.0, True, None
    env.unwrapped.animals.clear()
    return px, pz


def act(**keys):
    a = noop()
    for k, v in keys.items():
        a[k] = np.asarray(v, dtype=np.float32) if k == "camera" else v
    return a
