"""The player's body: movement from the MineRL keys, gravity, jumping, swimming, sneaking and fall damage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.voxel.blocks import FLUID
from envs.voxel.physics import DRAG, GRAVITY, JUMP, Box, box_at, has_support, move_box
from envs.voxel.world import VoxelWorld

WALK, SPRINT, SNEAK, SWIM = 4.317 / 20, 5.612 / 20, 1.295 / 20, 2.2 / 20  # blocks per tick (Minecraft speeds)


@dataclass
class Player:
    """Player state. `pos` is the centre of the feet; velocities are in blocks per tick."""

    pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    vel: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    yaw: float = 0.0
    pitch: float = 0.0
    on_ground: bool = False
    in_water: bool = False
    eye_in_water: bool = False
    sneaking: bool = False
    sprinting: bool = False
    health: float = 20.0
    fall_from: float | None = None  # highest y of the current flight
    moved: tuple[float, float, float] = (0.0, 0.0, 0.0)  # displacement of the last tick (blocks)

    WIDTH = 0.6
    HEIGHT = 1.8
    EYE = 1.62
    SNEAK_EYE = 1.27

    def eye(self) -> np.ndarray:
        return self.pos + np.array([0.0, self.SNEAK_EYE if self.sneaking else self.EYE, 0.0])

    def box(self) -> Box:
        return box_at(self.pos[0], self.pos[1], self.pos[2], self.WIDTH, self.HEIGHT)


def _wet(world: VoxelWorld, x: float, y: float, z: float) -> bool:
    return bool(FLUID[world.get(math.floor(x), math.floor(y), math.floor(z))])


def step_player(p: Player, world: VoxelWorld, keys: dict[str, bool], others: list[Box]) -> list[dict[str, Any]]:
    """Advance the player one tick under the pressed `keys`; returns the events it caused."""
    events: list[dict[str, Any]] = []
    fwd = keys["forward"] - keys["back"]
    strafe = keys["right"] - keys["left"]
    p.sneaking = keys["sneak"]
    p.sprinting = keys["sprint"] and fwd > 0 and not p.sneaking
    speed = SWIM if p.in_water else (SNEAK if p.sneaking else (SPRINT if p.sprinting else WALK))
    yaw = math.radians(p.yaw)
    fx, fz = -math.sin(yaw), math.cos(yaw)  # forward
    rx, rz = -math.cos(yaw), -math.sin(yaw)  # right
    mx, mz = fwd * fx + strafe * rx, fwd * fz + strafe * rz
    norm = math.hypot(mx, mz)
    if norm > 0:
        mx, mz = mx / norm * speed, mz / norm * speed
    control = 1.0 if p.on_ground or p.in_water else 0.25  # weak steering in the air
    p.vel[0] += (mx - p.vel[0]) * control
    p.vel[2] += (mz - p.vel[2]) * control

    # Minecraft order: the jump impulse is moved with in full, gravity and drag apply after the move.
    if p.in_water:
        p.vel[1] = p.vel[1] * 0.8 - 0.02 + (0.06 if keys["jump"] else 0.0)
    elif keys["jump"] and p.on_ground:
        p.vel[1] = JUMP

    dx, dy, dz = p.vel
    box = p.box()
    if p.sneaking and p.on_ground:  # sneaking never walks off an edge
        if dx and not has_support(world, tuple(box[i] + (dx if i % 3 == 0 else 0.0) for i in range(6))):
            dx = p.vel[0] = 0.0
        if dz and not has_support(world, tuple(box[i] + (dz if i % 3 == 2 else 0.0) for i in range(6))):
            dz = p.vel[2] = 0.0
    new_box, done = move_box(world, box, (dx, dy, dz), others)
    y_before = p.pos[1]
    p.on_ground = dy < 0 and done[1] > dy + 1e-9
    if done[1] != dy:
        p.vel[1] = 0.0
    if not p.in_water:  # standing still this keeps a small downward speed, so `on_ground` holds every tick
        p.vel[1] = (p.vel[1] - GRAVITY) * DRAG
    p.moved = done
    if done[0] != dx:
        p.vel[0] = 0.0
    if done[2] != dz:
        p.vel[2] = 0.0
    p.pos = np.array([(new_box[0] + new_box[3]) / 2, new_box[1], (new_box[2] + new_box[5]) / 2])

    was_wet = p.in_water
    p.in_water = _wet(world, p.pos[0], p.pos[1] + 0.1, p.pos[2]) or _wet(world, p.pos[0], p.pos[1] + 0.9, p.pos[2])
    p.eye_in_water = _wet(world, *p.eye())
    if p.in_water != was_wet:
        events.append({"type": "entered_water" if p.in_water else "left_water"})
    if not p.on_ground and not p.in_water:  # airborne: remember the highest point of this flight
        top = max(y_before, p.pos[1])
        p.fall_from = top if p.fall_from is None else max(p.fall_from, top)
    elif p.fall_from is not None:  # landed
        drop = p.fall_from - p.pos[1]
        p.fall_from = None
        if drop >= 2.0:
            events.append({"type": "fell", "distance": round(float(drop), 2), "into_water": p.in_water})
        damage = 0.0 if p.in_water else math.floor(drop - 3.0)
        if damage > 0:
            p.health = max(0.0, p.health - damage)
            events.append({"type": "hurt", "cause": "fall", "damage": float(damage), "health": p.health})
            if p.health <= 0:
                events.append({"type": "died", "cause": "fall"})
    return events
