"""Axis-aligned box physics against the block grid, in blocks and ticks (20 ticks per second).

Movement follows Minecraft's per-tick model (motionY = (motionY - 0.08) * 0.98, jump impulse 0.42), so jumps clear
one block and falls feel familiar. Collision resolves one axis at a time (y, then x, then z), clipping the move
against every solid block and extra box it would enter, as Minecraft's `calculateXOffset` family does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from envs.voxel.blocks import SOLID
from envs.voxel.world import VoxelWorld

Box = tuple[float, float, float, float, float, float]  # (x0, y0, z0, x1, y1, z1)
EPS = 1e-6
GRAVITY = 0.08  # blocks / tick^2
DRAG = 0.98
JUMP = 0.42  # blocks / tick


def box_at(x: float, y: float, z: float, width: float, height: float) -> Box:
    """The box of a body whose feet are centred at (x, y, z)."""
    h = width / 2
    return (x - h, y, z - h, x + h, y + height, z + h)


def _solid_cells(world: VoxelWorld, lo: Sequence[float], hi: Sequence[float]) -> list[Box]:
    cells = []
    get = world.get
    for x in range(math.floor(lo[0]), math.floor(hi[0] - EPS) + 1):
        for z in range(math.floor(lo[2]), math.floor(hi[2] - EPS) + 1):
            for y in range(math.floor(lo[1]), math.floor(hi[1] - EPS) + 1):
                if SOLID[get(x, y, z)]:
                    cells.append((x, y, z, x + 1, y + 1, z + 1))
    return cells


def _clip(box: Box, other: Box, axis: int, d: float) -> float:
    """Largest part of move `d` along `axis` that keeps `box` out of `other`."""
    a1, a2 = (axis + 1) % 3, (axis + 2) % 3
    if other[a1 + 3] <= box[a1] + EPS or other[a1] >= box[a1 + 3] - EPS:
        return d
    if other[a2 + 3] <= box[a2] + EPS or other[a2] >= box[a2 + 3] - EPS:
        return d
    if d > 0 and other[axis] >= box[axis + 3] - EPS:
        return min(d, other[axis] - box[axis + 3])
    if d < 0 and other[axis + 3] <= box[axis] + EPS:
        return max(d, other[axis + 3] - box[axis])
    return d


def move_box(world: VoxelWorld, box: Box, delta: Sequence[float], others: Sequence[Box] = ()
             ) -> tuple[Box, tuple[float, float, float]]:
    """Move `box` by `delta`, stopping at solid blocks and `others`. Returns (new box, the move done)."""
    lo = [min(box[i], box[i] + delta[i]) for i in range(3)]
    hi = [max(box[i + 3], box[i + 3] + delta[i]) for i in range(3)]
    obstacles = _solid_cells(world, lo, hi) + [o for o in others if _overlaps_range(o, lo, hi)]
    b = list(box)
    done = [0.0, 0.0, 0.0]
    for axis in (1, 0, 2):
        d = delta[axis]
        if d == 0.0:
            continue
        for o in obstacles:
            d = _clip(tuple(b), o, axis, d)
        b[axis] += d
        b[axis + 3] += d
        done[axis] = d
    return tuple(b), (done[0], done[1], done[2])


def _overlaps_range(o: Box, lo: Sequence[float], hi: Sequence[float]) -> bool:
    return all(o[i] < hi[i] and o[i + 3] > lo[i] for i in range(3))


def overlaps(a: Box, b: Box) -> bool:
    return all(a[i] < b[i + 3] - EPS and a[i + 3] > b[i] + EPS for i in range(3))


def has_support(world: VoxelWorld, box: Box) -> bool:
    """Whether any solid block lies just under the box's footprint."""
    return bool(_solid_cells(world, (box[0], box[1] - 0.1, box[2]), (box[3], box[1], box[5])))
