"""Render one frame of each spawn mode and scene kind (docs/images/physics.png):
python examples/physics_gallery.py [out.png]"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from envs.physics.env import PhysicsEnv


def main(out: str = "docs/images/physics.png") -> None:
    tiles = []
    for i, (spawn, scene) in enumerate((("drop", "table"), ("throw", "table"), ("tower", "table"),
                                        ("ramp", "table"), ("drop", "floor"), ("drop", "room"))):
        env = PhysicsEnv(width=192, height=144, spawn=spawn, scene=scene, num_objects=(6, 10))
        env.reset(seed=i)
        for _ in range(8):  # half a second in: things have started to move
            obs = env.step(np.zeros(2, np.float32))[0]
        tiles.append(obs)
        env.close()
    Image.fromarray(np.concatenate([np.concatenate(tiles[:3], 1), np.concatenate(tiles[3:], 1)], 0)).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
