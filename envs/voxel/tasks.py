"""Tasks of the voxel world: what is rewarded and when an episode terminates.

| task         | reward                                                     | terminated            | default steps |
|--------------|------------------------------------------------------------|-----------------------|---------------|
| explore      | 0                                                          | on death              | 1000          |
| collect_wood | +1 per log collected                                       | on death              | 1000          |
| navigate     | +1 on reaching the goal pillar, plus 0.05 per block closer | on arrival or death   | 600           |
| build        | +1 per block placed                                        | on death              | 500           |
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from envs.voxel.blocks import LOGS, Block
from envs.voxel.worldgen import HEIGHT, SEA_LEVEL

if TYPE_CHECKING:
    from envs.voxel.env import VoxelEnv


class Task:
    """Base task: no reward; terminates only when the player dies."""

    name = "explore"
    default_max_steps = 1000
    start_inventory: tuple[tuple[Block, int], ...] = ((Block.DIRT, 16),)

    def reset(self, env: VoxelEnv) -> None:
        """Prepare the world (e.g. place a goal) after the player has spawned."""

    def reward(self, env: VoxelEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        """(reward, terminated) for the step whose `events` just happened."""
        return 0.0, False

    # the task's state as numbers, recorded per frame (`data/task_state`, docs/dataset.md): what an engine knows and
    # a frame may not show (where an off-screen goal is), for models that stand in for the engine's reward
    state_keys: tuple[str, ...] = ()

    def state(self, env: VoxelEnv) -> list[float]:
        return []

    def info(self, env: VoxelEnv) -> dict[str, Any]:
        return {"name": self.name}


class CollectWood(Task):
    name = "collect_wood"

    def reward(self, env: VoxelEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        logs = sum(e["count"] for e in events if e["type"] == "item_collected" and Block[e["item"].upper()] in LOGS)
        return float(logs), False


class Build(Task):
    name = "build"
    default_max_steps = 500
    start_inventory = ((Block.PLANKS, 64), (Block.COBBLESTONE, 64), (Block.DIRT, 64), (Block.LOG, 32))

    def reward(self, env: VoxelEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        return float(sum(1 for e in events if e["type"] == "block_placed")), False


class Navigate(Task):
    """Reach a glowing 3-block goal pillar placed 12-32 blocks away (configurable with `goal_distance`)."""

    name = "navigate"
    default_max_steps = 600
    PILLAR = 3
    ARRIVAL = 1.5  # horizontal distance from the pillar's axis that counts as arrival
    SHAPING = 0.05

    def __init__(self, goal_distance: tuple[float, float] = (12.0, 32.0)) -> None:
        lo, hi = goal_distance
        if not 2.0 <= lo <= hi:
            raise ValueError(f"goal_distance must be (min, max) with 2 <= min <= max, got {goal_distance}")
        self.goal_distance = (float(lo), float(hi))
        self.goal: tuple[int, int, int] | None = None
        self._last = 0.0

    def reset(self, env: VoxelEnv) -> None:
        rng, world = env.np_random, env.world
        px, _, pz = env.player_pos
        for _ in range(64):  # look for dry land at the drawn distance
            dist = rng.uniform(*self.goal_distance)
            angle = rng.uniform(0, 2 * math.pi)
            gx, gz = math.floor(px + dist * math.cos(angle)), math.floor(pz + dist * math.sin(angle))
            world.ensure([(gx >> 4, gz >> 4)])
            top = world.surface_y(gx, gz)
            if top >= SEA_LEVEL and world.get(gx, top, gz) != Block.WATER and top + self.PILLAR < HEIGHT:
                break
        for dy in range(1, self.PILLAR + 1):
            world.set(gx, top + dy, gz, Block.GOAL)
        self.goal = (gx, top + 1, gz)
        self._last = self.distance(env)

    def distance(self, env: VoxelEnv) -> float:
        x, _, z = env.player_pos
        return math.hypot(x - (self.goal[0] + 0.5), z - (self.goal[2] + 0.5))

    def reward(self, env: VoxelEnv, events: list[dict[str, Any]]) -> tuple[float, bool]:
        d = self.distance(env)
        r = self.SHAPING * (self._last - d)
        self._last = d
        if d < self.ARRIVAL:
            events.append({"type": "goal_reached", "pos": list(self.goal)})
            return r + 1.0, True
        return r, False

    state_keys = ("goal_forward", "goal_right")

    def state(self, env: VoxelEnv) -> list[float]:
        """Where the pillar's axis is from the player, in blocks along the view's horizontal forward and right axes
        (yaw only: looking up or down does not move it)."""
        x, _, z = env.player_pos
        dx, dz = self.goal[0] + 0.5 - x, self.goal[2] + 0.5 - z
        yaw = math.radians(env.player.yaw)
        return [float(-dx * math.sin(yaw) + dz * math.cos(yaw)), float(-dx * math.cos(yaw) - dz * math.sin(yaw))]

    def info(self, env: VoxelEnv) -> dict[str, Any]:
        return {"name": self.name, "goal": list(self.goal), "goal_distance": self.distance(env),
                "state": self.state(env), "state_keys": list(self.state_keys)}


TASKS: dict[str, type[Task]] = {"explore": Task, "collect_wood": CollectWood, "navigate": Navigate, "build": Build}


def make_task(name: str, **kwargs: Any) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown voxel task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name](**kwargs)
