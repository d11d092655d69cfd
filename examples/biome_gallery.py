"""Render one view of each biome (docs/images/biomes.png): python examples/biome_gallery.py [out.png]"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
from PIL import Image

import envs  # noqa: F401  (registers worldsim/Voxel-v0)
from envs.voxel.worldgen import Biome, generate_region


def main(out: str = "docs/images/biomes.png", seed: int = 0) -> None:
    region = generate_region(seed, -320, -320, 640, 640)
    env = gym.make("worldsim/Voxel-v0", width=192, height=108).unwrapped
    tiles = []
    for biome, hours in ((Biome.PLAINS, 10), (Biome.FOREST, 16), (Biome.DESERT, 12), (Biome.SNOW, 9),
                         (Biome.MOUNTAINS, 17.8), (Biome.WATER, 20.5)):
        xs, zs = np.nonzero(region.biome == biome)
        if len(xs) == 0:
            continue
        x, z = int(xs[len(xs) // 2]) - 320, int(zs[len(zs) // 2]) - 320
        env.reset(seed=0, options={"world_seed": seed, "start_hours": hours})
        p = env.player
        p.pos, p.pitch, p.yaw = np.array([x + 0.5, env.world.surface_y(x, z) + 5.0, z + 0.5]), 22.0, 45.0
        env._stream_chunks(force=True)
        env._observe([])  # render from the raised viewpoint without stepping physics
        tiles.append(env._frame)
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles) - len(tiles) % 3, 3)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
