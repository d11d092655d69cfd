"""Animals that wander the voxel world: boxes with gravity, collision and a simple wander/flee behaviour."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from envs.voxel.blocks import FLUID, SOLID
from envs.voxel.physics import DRAG, GRAVITY, JUMP, Box, box_at, move_box
from envs.voxel.world import VoxelWorld

# kind: (width, height, body colour, head colour, walk speed in blocks/tick)
KINDS: dict[str, tuple[float, float, tuple[float, float, float], tuple[float, float, float], float]] = {
    "pig": (0.9, 0.9, (0.94, 0.62, 0.62), (0.98, 0.70, 0.70), 0.05),
    "cow": (0.9, 1.4, (0.33, 0.24, 0.16), (0.85, 0.85, 0.85), 0.045),
    "sheep": (0.9, 1.3, (0.92, 0.92, 0.90), (0.55, 0.48, 0.42), 0.045),
    "chicken": (0.4, 0.7, (0.97, 0.97, 0.97), (0.95, 0.75, 0.15), 0.06),
}


@dataclass
class Animal:
    """One animal. `pos` is the centre of its feet."""

    id: int
    kind: str
    pos: np.ndarray
    yaw: float = 0.0  # degrees, same convention as the player
    vy: float = 0.0
    walking: int = 0  # ticks left to walk
    flee: int = 0  # ticks left running away after being hit
    on_ground: bool = False
    knock: list[float] = field(default_factory=lambda: [0.0, 0.0])
    _boxes_key: tuple | None = field(default=None, repr=False, compare=False)
    _boxes: list = field(default_factory=list, repr=False, compare=False)

    @property
    def size(self) -> tuple[float, float]:
        w, h = KINDS[self.kind][:2]
        return w, h

    def box(self) -> Box:
        w, h = self.size
        return box_at(self.pos[0], self.pos[1], self.pos[2], w, h)

    def cached_render_boxes(self) -> list[list[float]]:
        """`render_boxes`, recomputed only when the animal moved or turned (most stand still most of the time)."""
        key = (float(self.pos[0]), float(self.pos[1]), float(self.pos[2]), self.yaw)
        if self._boxes_key != key:
            self._boxes_key, self._boxes = key, self.render_boxes()
        return self._boxes

    def render_boxes(self) -> list[list[float]]:
        """Body and head as renderer boxes (cx, cy, cz, sx, sy, sz, yaw_rad, r, g, b, seg_id)."""
        w, h, body, head, _ = KINDS[self.kind]
        yaw = math.radians(self.yaw)
        fx, fz = -math.sin(yaw), math.cos(yaw)
        body_len, body_h = w * 1.4, h * 0.55
        x, y, z = self.pos
        legs = h - body_h - h * 0.05
        hs = w * 0.55
        return [
            [x, y + legs + body_h / 2, z, w * 0.9, body_h, body_len, -yaw, *body, self.id],
            [x + fx * body_len * 0.55, y + h - hs / 2, z + fz * body_len * 0.55, hs, hs, hs, -yaw, *head, self.id],
            [x, y + legs / 2, z, w * 0.7, legs, body_len * 0.8, -yaw, *(c * 0.8 for c in body), self.id],
        ]


def step_animal(a: Animal, world: VoxelWorld, rng: np.random.Generator, player_box: Box) -> None:
    """Advance one animal by one tick."""
    speed = KINDS[a.kind][4]
    if a.flee > 0:
        a.flee -= 1
        speed *= 2.2
        a.walking = max(a.walking, 1)
    elif a.walking > 0:
        a.walking -= 1
    elif rng.random() < 0.03:  # start a new stroll in a random direction
        a.yaw = float(rng.uniform(-180.0, 180.0))
        a.walking = int(rng.integers(20, 60))
    moving = a.walking > 0
    resting = not moving and a.on_ground and abs(a.knock[0]) + abs(a.knock[1]) < 1e-4
    if resting and SOLID[world.get(math.floor(a.pos[0]), math.floor(a.pos[1] - 0.05), math.floor(a.pos[2]))]:
        return  # standing still on solid ground: nothing to integrate
    yaw = math.radians(a.yaw)
    dx = -math.sin(yaw) * speed * moving + a.knock[0]
    dz = math.cos(yaw) * speed * moving + a.knock[1]
    a.knock = [a.knock[0] * 0.6, a.knock[1] * 0.6]
    x, y, z = (int(math.floor(v)) for v in a.pos)
    in_water = bool(FLUID[world.get(x, y, z)])
    if in_water:
        a.vy = a.vy * 0.8 + 0.03
    box, done = move_box(world, a.box(), (dx, a.vy, dz), (player_box,))
    a.on_ground = a.vy < 0 and done[1] > a.vy + 1e-9
    if done[1] != a.vy:
        a.vy = 0.0
    if not in_water:
        a.vy = (a.vy - GRAVITY) * DRAG  # gravity after the move, as for the player
    if moving and a.on_ground and (abs(done[0]) < abs(dx) * 0.5 or abs(done[2]) < abs(dz) * 0.5):
        a.vy = JUMP  # hop up one-block steps
    a.pos = np.array([(box[0] + box[3]) / 2, box[1], (box[2] + box[5]) / 2])
