"""Breaking and placing blocks, hitting animals, and the inventory with its 9-slot hotbar."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.voxel.blocks import FLUID, RULES, Block, block_name
from envs.voxel.physics import Box, overlaps

if TYPE_CHECKING:
    from envs.voxel.env import VoxelEnv

REACH = 4.5  # blocks, as in Minecraft survival
USE_COOLDOWN = 4  # ticks between placements while `use` is held (Minecraft's right-click delay)
SLOTS = 9
STACK = 64


def _ray_box(origin: np.ndarray, direction: np.ndarray, box: Box) -> float | None:
    """Distance along a ray to a box (slab method), or None if it misses."""
    t0, t1 = 0.0, math.inf
    for i in range(3):
        d = direction[i]
        if abs(d) < 1e-12:
            if not box[i] <= origin[i] <= box[i + 3]:
                return None
            continue
        a, b = (box[i] - origin[i]) / d, (box[i + 3] - origin[i]) / d
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return None
    return t0


class Interaction:
    """The player's hands: inventory, hotbar selection, break progress and placement cooldown."""

    def __init__(self, start: tuple[tuple[Block, int], ...]) -> None:
        self.hotbar: list[list[Any]] = [[None, 0] for _ in range(SLOTS)]  # [block, count] per slot
        self.selected = 0
        self._break_target: tuple[int, int, int] | None = None
        self._break_progress = 0
        self._cooldown = 0
        for block, count in start:
            self.add(block, count)

    def add(self, block: Block, count: int = 1) -> int:
        """Put items into the hotbar (stacks of 64); returns how many fitted."""
        left = count
        for slot in self.hotbar:
            if slot[0] == block and slot[1] < STACK:
                n = min(left, STACK - slot[1])
                slot[1] += n
                left -= n
        for slot in self.hotbar:
            if left and slot[0] is None:
                n = min(left, STACK)
                slot[0], slot[1] = block, n
                left -= n
        return count - left

    def inventory_info(self) -> dict[str, Any]:
        totals: dict[str, int] = {}
        for block, n in self.hotbar:
            if block is not None:
                totals[block_name(block)] = totals.get(block_name(block), 0) + n
        return {"items": totals, "hotbar": [block_name(b) if b is not None else None for b, _ in self.hotbar],
                "counts": [n for _, n in self.hotbar], "selected": self.selected}

    def target(self, env: VoxelEnv) -> tuple[Any, ...] | None:
        """What the crosshair points at: ("entity", animal, dist) or ("block", pos, normal, dist) or None."""
        cam = env._cam
        eye, look = cam.position, cam.basis()[2]
        hit = env.world.raycast(eye, look, REACH)
        best = None
        for a in env.animals:
            if abs(a.pos[0] - eye[0]) > REACH + 1 or abs(a.pos[2] - eye[2]) > REACH + 1:
                continue  # cheap reject before the ray-box test
            t = _ray_box(eye, look, a.box())
            if t is not None and t <= REACH and (best is None or t < best[2]):
                best = ("entity", a, t)
        if best is not None and (hit is None or best[2] < hit[2]):
            return best
        return None if hit is None else ("block", hit[0], hit[1], hit[2])

    def target_info(self, env: VoxelEnv) -> dict[str, Any]:
        """What the crosshair points at, always with the same keys (vector envs stack infos by key):
        kind ("block", "entity" or "none"), name, pos (block) or -1s, entity id or -1, distance (inf if none),
        break_progress (ticks of attack so far on this block)."""
        t = self.target(env)
        out = {"kind": "none", "name": "", "pos": [-1, -1, -1], "id": -1, "distance": math.inf, "break_progress": 0}
        if t is None:
            return out
        if t[0] == "entity":
            out.update(kind="entity", name=t[1].kind, id=t[1].id, distance=round(t[2], 3))
            return out
        pos = t[1]
        out.update(kind="block", name=block_name(env.world.get(*pos)), pos=list(pos), distance=round(t[3], 3),
                   break_progress=self._break_progress if self._break_target == pos else 0)
        return out

    def act(self, env: VoxelEnv, attack: bool, use: bool) -> list[dict[str, Any]]:
        """Apply `attack` and `use` for one tick; returns the events."""
        self._cooldown = max(0, self._cooldown - 1)
        if not use:
            self._cooldown = 0
        if not attack and not use:
            self._break_target, self._break_progress = None, 0
            return []
        env._cam = env.camera()
        target = self.target(env)
        events: list[dict[str, Any]] = []
        if attack:
            events += self._attack(env, target)
        else:
            self._break_target, self._break_progress = None, 0
        if use and self._cooldown == 0 and target is not None and target[0] == "block":
            events += self._place(env, target[1], target[2])
        return events

    def _attack(self, env: VoxelEnv, target: tuple[Any, ...] | None) -> list[dict[str, Any]]:
        if target is None:
            self._break_target, self._break_progress = None, 0
            return []
        if target[0] == "entity":
            a = target[1]
            look = env._cam.basis()[2]
            a.knock = [float(look[0]) * 0.5, float(look[2]) * 0.5]
            a.vy, a.flee = 0.25, 40
            a.yaw = math.degrees(math.atan2(-look[0], look[2]))
            self._break_target, self._break_progress = None, 0
            return [{"type": "hit_entity", "id": a.id, "kind": a.kind}]
        pos = target[1]
        block = env.world.get(*pos)
        rules = RULES[Block(block)]
        if rules.break_ticks == 0:
            return []
        if pos != self._break_target:
            self._break_target, self._break_progress = pos, 0
        self._break_progress += 1
        if self._break_progress < rules.break_ticks:
            return []
        env.world.set(*pos, Block.AIR)
        self._break_target, self._break_progress = None, 0
        events = [{"type": "block_broken", "block": block_name(block), "pos": list(pos)}]
        if rules.drop is not None and self.add(rules.drop, 1):
            events.append({"type": "item_collected", "item": block_name(rules.drop), "count": 1})
        return events

    def _place(self, env: VoxelEnv, pos: tuple[int, int, int], normal: tuple[int, int, int]) -> list[dict[str, Any]]:
        slot = self.hotbar[self.selected]
        block, count = slot
        if block is None or count <= 0 or not RULES[Block(block)].placeable:
            return []
        at = (pos[0] + normal[0], pos[1] + normal[1], pos[2] + normal[2])
        current = env.world.get(*at)
        if current != Block.AIR and not FLUID[current]:
            return []
        cell = (at[0], at[1], at[2], at[0] + 1, at[1] + 1, at[2] + 1)
        if overlaps(cell, env.player.box()) or any(overlaps(cell, a.box()) for a in env.animals):
            return []
        try:
            env.world.set(*at, block)
        except ValueError:  # above the build limit
            return []
        slot[1] -= 1
        if slot[1] == 0:
            slot[0] = None
        self._cooldown = USE_COOLDOWN
        return [{"type": "block_placed", "block": block_name(block), "pos": list(at)}]
