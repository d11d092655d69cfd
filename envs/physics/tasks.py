"""Tasks of the physics scenes.

- observe: reward 0; never terminates; 150 steps by default.
- push_to_target: reward 2 x the target's progress towards the goal (metres), +1 on arrival, -1 if it falls off;
  terminates when the target is in the goal or fell; 300 steps by default.
- topple_tower: +1 per tower block toppled or knocked down; terminates when all are down; 300 steps by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from envs.physics.env import PhysicsEnv

GOAL_RADIUS = 0.1


class Task:
    name = "observe"
    default_max_steps = 150
    spawn: str | None = None  # a spawn mode the task needs (None: any)

    def reset(self, env: PhysicsEnv) -> None:
        """Prepare task state for a new scene (observe has none)."""

    def reward(self, env: PhysicsEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        return 0.0, False

    def info(self, env: PhysicsEnv) -> dict[str, Any]:
        return {"name": self.name}


class PushToTarget(Task):
    """Push a named object into a circular goal region on the surface."""

    name = "push_to_target"
    default_max_steps = 300

    def reset(self, env: PhysicsEnv) -> None:
        rng, spec = env.np_random, env.scene
        candidates = [o for o in spec.objects if not o.in_tower] or spec.objects
        self.target = candidates[int(rng.integers(len(candidates)))]
        hx, hy = spec.area
        start = self.target.position[:2]
        for _ in range(200):
            goal = np.array([rng.uniform(-hx + 0.15, hx - 0.15), rng.uniform(-hy + 0.15, hy - 0.15)])
            if 0.25 <= np.linalg.norm(goal - start) <= 0.7:
                break
        self.goal = goal
        self._last = self.distance(env)

    def distance(self, env: PhysicsEnv) -> float:
        pos = env.object_pos[self.target.id - 1]
        return float(np.linalg.norm(pos[:2] - self.goal))

    def reward(self, env: PhysicsEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        d = self.distance(env)
        r = 2.0 * (self._last - d)
        self._last = d
        if any(e["type"] == "fell_off_table" and e["id"] == self.target.id for e in events):
            return r - 1.0, True
        if d < GOAL_RADIUS:
            events.append({"type": "entered_goal", "id": self.target.id, "name": self.target.name})
            return r + 1.0, True
        return r, False

    def info(self, env: PhysicsEnv) -> dict[str, Any]:
        return {"name": self.name, "target": self.target.id, "target_name": self.target.name,
                "goal": [float(self.goal[0]), float(self.goal[1])], "goal_radius": GOAL_RADIUS,
                "distance": self.distance(env), "instruction": f"push the {self.target.name} into the goal"}


class ToppleTower(Task):
    name = "topple_tower"
    default_max_steps = 300
    spawn = "tower"

    def reset(self, env: PhysicsEnv) -> None:
        self.tower = [o.id for o in env.scene.objects if o.in_tower]
        self.down: set[int] = set()

    def reward(self, env: PhysicsEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        new = {e["id"] for e in events if e["type"] in ("toppled", "fell_off_table") and e["id"] in self.tower}
        new -= self.down
        self.down |= new
        return float(len(new)), len(self.down) == len(self.tower)

    def info(self, env: PhysicsEnv) -> dict[str, Any]:
        return {"name": self.name, "tower": list(self.tower), "toppled": sorted(self.down)}


TASKS: dict[str, type[Task]] = {"observe": Task, "push_to_target": PushToTarget, "topple_tower": ToppleTower}


def make_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown physics task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]()

