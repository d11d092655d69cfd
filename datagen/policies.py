"""Policies that drive the voxel engine: `random` (sticky random keys) and `explorer` (walks, turns smoothly,
jumps obstacles, looks around, mines and places). Both take a seeded generator, so episodes are reproducible."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs.voxel.actions import BUTTONS, noop


class RandomPolicy:
    """Random keys and camera moves, each held for `repeat` steps (sticky actions look like play, not noise)."""

    def __init__(self, rng: np.random.Generator, repeat: int = 4) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.rng, self.repeat = rng, repeat
        self._held: dict[str, Any] = noop()
        self._left = 0

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        if self._left == 0:
            a = {k: int(self.rng.random() < 0.25) for k in BUTTONS}
            a["camera"] = self.rng.normal(0.0, 6.0, size=2).clip(-180, 180).astype(np.float32)
            a["hotbar"] = int(self.rng.integers(0, 10)) if self.rng.random() < 0.1 else 0
            self._held, self._left = a, self.repeat
        self._left -= 1
        return dict(self._held)


class ExplorerPolicy:
    """Walks forward, steers smoothly, jumps when blocked, looks up and down, sometimes mines or places."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._turn = 0.0  # degrees per step, a slowly drifting steering rate
        self._pitch_goal = 10.0
        self._mine = 0  # steps left in a mining burst
        self._stuck = 0
        self._escape = 0.0  # degrees per step while turning away from a wall
        self._escape_steps = 0

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        rng, a = self.rng, noop()
        pose = info["pose"]
        a["forward"] = 1
        a["sprint"] = int(rng.random() < 0.3)
        self._turn = float(np.clip(0.9 * self._turn + rng.normal(0.0, 1.2), -8.0, 8.0))
        speed = math.hypot(pose["velocity"][0], pose["velocity"][2])
        if pose["in_water"] or (pose["on_ground"] and speed < 1.0):
            a["jump"] = 1
            self._stuck += 1
        else:
            self._stuck = 0
        if self._stuck > 8:  # a wall too high to jump: turn away for a while
            self._escape, self._escape_steps = (20.0 if rng.random() < 0.5 else -20.0), 8
            self._stuck = 0
        if self._escape_steps > 0:
            self._escape_steps -= 1
            self._turn = self._escape
        if rng.random() < 0.02:
            self._pitch_goal = float(rng.uniform(-25.0, 40.0))
        pitch_step = float(np.clip(self._pitch_goal - pose["pitch"], -4.0, 4.0))
        target = info["target"]
        if self._mine == 0 and target["kind"] == "block" and rng.random() < 0.03:
            self._mine = int(rng.integers(8, 20))
        if self._mine > 0:
            self._mine -= 1
            a["attack"], a["forward"], a["sprint"] = 1, 0, 0
            self._turn *= 0.5
        elif target["kind"] == "block" and rng.random() < 0.01:
            a["use"] = 1
        a["camera"] = np.array([pitch_step, self._turn], dtype=np.float32)
        return a


POLICIES = {"random": RandomPolicy, "explorer": ExplorerPolicy}


def make_policy(name: str, rng: np.random.Generator, **kwargs: Any) -> RandomPolicy | ExplorerPolicy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name](rng, **kwargs)
