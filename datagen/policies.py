"""Policies that drive the voxel engine: `random` (sticky random keys) and `explorer` (walks, turns smoothly,
jumps obstacles, looks around, mines and places). Both take a seeded generator, so episodes are reproducible."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datagen.games import GameSource
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


def yaw_error(pose: dict[str, Any], point: Any) -> float:
    """Degrees to turn (camera yaw) to face `point` (x, y, z) from `pose`, in [-180, 180)."""
    pos = pose["position"]
    want = math.degrees(math.atan2(-(point[0] - pos[0]), point[2] - pos[2]))
    return (want - pose["yaw"] + 180.0) % 360.0 - 180.0


class ExplorerPolicy:
    """Walks forward, steers smoothly, jumps when blocked, looks up and down, sometimes mines or places, and now and
    then walks up to an animal it sees."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._turn = 0.0  # degrees per step, a slowly drifting steering rate
        self._pitch_goal = 10.0
        self._mine = 0  # steps left in a mining burst
        self._stuck = 0
        self._escape = 0.0  # degrees per step while turning away from a wall
        self._escape_steps = 0
        self._chase = 0  # steps left walking towards the animal `_chase_id`
        self._chase_id = -1

    def _approach(self, info: dict[str, Any]) -> float | None:
        """Yaw error (degrees) towards a visible animal being approached, or None."""
        animals = info["visible"]["entities"]
        if self._chase == 0 and animals and self.rng.random() < 0.05:
            near = min(animals, key=lambda e: e["distance"])
            if near["distance"] < 16.0:
                self._chase, self._chase_id = int(self.rng.integers(20, 60)), near["id"]
        if self._chase == 0:
            return None
        self._chase -= 1
        e = next((e for e in animals if e["id"] == self._chase_id), None)
        if e is None or e["distance"] < 2.0:  # lost from view, or reached
            self._chase = 0
            return None
        return yaw_error(info["pose"], e["position"])

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
        chase = self._approach(info) if self._escape_steps == 0 else None
        if chase is not None:
            self._turn = float(np.clip(chase, -10.0, 10.0))
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


class NavigateSolver(ExplorerPolicy):
    """Voxel `navigate`: turn towards the goal pillar (from `info["task"]`), walk, jump over steps."""

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        goal = info["task"].get("goal")
        if goal is None:
            return super().act(info)
        a = super().act(info)
        err = yaw_error(info["pose"], (goal[0] + 0.5, 0.0, goal[2] + 0.5))
        if self._escape_steps == 0:
            a["camera"] = np.array([float(np.clip(5.0 - info["pose"]["pitch"], -4, 4)), float(np.clip(err, -15, 15))],
                                   dtype=np.float32)
        a["attack"], a["use"], a["forward"] = 0, 0, int(abs(err) < 60)
        return a


GOAL_RGB = (250, 40, 200)  # the navigate goal pillar's emissive colour (envs/voxel/blocks.py, Block.GOAL)


def goal_bearing(frame: np.ndarray, intrinsics: Any, min_pixels: int = 2) -> float | None:
    """Degrees to turn (camera yaw, positive = right) to face the goal pillar's pixels in `frame` (H, W, 3) uint8,
    or None when fewer than `min_pixels` of them show. Reads the frame only: the pillar's colour, within a tolerance
    for fog, and the camera's pixel intrinsics K (3, 3), as the engine's info["camera"]["intrinsics"] gives them."""
    px = frame.astype(np.int16)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    mask = (r > 170) & (g < 130) & (b > 120) & (r - g > 90)
    if int(mask.sum()) < min_pixels:
        return None
    k = np.asarray(intrinsics, dtype=np.float64)
    col = float(np.nonzero(mask)[1].mean()) + 0.5  # pixel centres
    return math.degrees(math.atan((col - k[0, 2]) / k[0, 0]))


class SeekerPolicy(ExplorerPolicy):
    """Voxel `navigate` from the frame alone: it scans (turns in place, a full circle) until the goal pillar's colour
    shows, then steers to keep it centred and walks at it; when the pillar drops out of view it keeps the last
    bearing for a few steps; when a whole scan shows nothing it explores (ExplorerPolicy) for a while and scans
    again. Unlike NavigateSolver it never reads the goal's position, so its actions say nothing the frames do not:
    goal-directed data for a model that must learn navigate from pixels (the solver walks straight only towards a
    goal it knows is there, on screen or not, so in its episodes "forward" itself is a hint of the reward)."""

    SCAN_RATE = 24.0  # degrees of yaw per scanning step: 15 steps per circle
    REMEMBER = 6  # steps a lost pillar's bearing is kept

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._scan = 360.0  # degrees of scan left (starts by looking around)
        self._scan_dir = 1.0 if rng.random() < 0.5 else -1.0
        self._explore_steps = 0
        self._bearing: float | None = None  # last seen bearing, updated by the turns made since
        self._since_seen = 0

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        raise TypeError("SeekerPolicy acts on the frame: call act_on(frame, info)")

    def act_on(self, obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        base = ExplorerPolicy.act(self, info)  # jumping, wall escapes, pitch drift; its random draws every step
        seen = goal_bearing(np.asarray(obs), info["camera"]["intrinsics"])
        if seen is not None:
            self._bearing, self._since_seen = seen, 0
        elif self._bearing is not None:
            self._since_seen += 1
            if self._since_seen > self.REMEMBER:
                self._bearing = None
                self._scan, self._scan_dir = 360.0, (1.0 if rng.random() < 0.5 else -1.0)
        a = noop()
        a["jump"] = base["jump"]
        pitch = float(np.clip(5.0 - info["pose"]["pitch"], -4.0, 4.0))
        if self._bearing is not None:  # walk at the pillar
            turn = float(np.clip(self._bearing + rng.normal(0.0, 1.0), -15.0, 15.0))
            if self._escape_steps > 0:  # stuck behind a wall: the explorer's turn away
                turn = float(base["camera"][1])
            a["forward"] = int(abs(self._bearing) < 30.0)
            a["sprint"] = int(a["forward"] and abs(self._bearing) < 10.0 and rng.random() < 0.3)
            self._bearing -= turn
        elif self._scan > 0:  # look around, standing
            turn = self._scan_dir * min(self.SCAN_RATE, self._scan)
            self._scan -= abs(turn)
            if self._scan <= 0:
                self._explore_steps = int(rng.integers(15, 40))
            a["jump"] = 0
            self._stuck, self._escape_steps = 0, 0  # standing on purpose is not being stuck
        else:  # nothing in a whole circle: walk somewhere else, then look again
            a = base
            turn, pitch = float(base["camera"][1]), float(base["camera"][0])
            self._explore_steps -= 1
            if self._explore_steps <= 0:
                self._scan, self._scan_dir = 360.0, (1.0 if rng.random() < 0.5 else -1.0)
        a["camera"] = np.array([pitch, turn], dtype=np.float32)
        return a


class CollectWoodSolver(ExplorerPolicy):
    """Voxel `collect_wood`: explore, and hold attack while the crosshair is on a log."""

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        a = super().act(info)
        target = info["target"]
        if target["kind"] == "block" and target["name"] in ("log", "spruce log"):
            a.update(attack=1, forward=0, sprint=0, jump=0, camera=np.zeros(2, np.float32))
        return a


class BuildSolver(ExplorerPolicy):
    """Voxel `build`: look at the ground ahead and place blocks while strolling."""

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        a = super().act(info)
        a["camera"][0] = float(np.clip(50.0 - info["pose"]["pitch"], -6, 6))
        a["use"], a["attack"] = 1, 0
        if info["inventory"]["counts"][info["inventory"]["selected"]] == 0:
            a["hotbar"] = 1 + int(np.argmax(info["inventory"]["counts"]))
        return a


class LookBackPolicy(ExplorerPolicy):
    """Explores, and every so often stops, looks away (150 to 180 degrees of yaw) and back within 12 steps, standing
    still: a revisit excursion. Episodes of this policy teach a world model that what it saw is still there when it
    looks again, and are the held-out data of the revisit metric (`worldsim eval`, docs/world_model.md)."""

    SETTLE = 3  # still steps before an excursion: the player stops, so the return view is the one it left

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._plan: list[float] = []  # yaw per step of the excursion under way (0: a still step)
        self._walk = int(rng.integers(6, 20))

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        if not self._plan and self._walk > 0:
            self._walk -= 1
            return super().act(info)
        if not self._plan:
            rng = self.rng
            total = float(rng.uniform(150.0, 180.0)) * (1.0 if rng.random() < 0.5 else -1.0)
            out, back = int(rng.integers(4, 7)), int(rng.integers(4, 7))
            hold = int(rng.integers(0, 12 - out - back + 1))
            self._plan = [0.0] * self.SETTLE + [total / out] * out + [0.0] * hold + [-total / back] * back
            self._walk = int(rng.integers(6, 20))
        a = noop()
        a["camera"] = np.array([0.0, self._plan.pop(0)], dtype=np.float32)
        return a


class BoxRandomPolicy:
    """Sticky uniform random actions for Box action spaces (physics), held for `repeat` steps."""

    def __init__(self, rng: np.random.Generator, size: int, repeat: int = 4) -> None:
        self.rng, self.size, self.repeat = rng, size, repeat
        self._held, self._left = np.zeros(size, np.float32), 0

    def act(self, info: dict[str, Any]) -> np.ndarray:
        if self._left == 0:
            self._held, self._left = self.rng.uniform(-1, 1, self.size).astype(np.float32), self.repeat
        self._left -= 1
        return self._held.copy()


class PusherPolicy:
    """Physics: drive the puck at objects (a new one every few seconds) and through them; drift the camera.

    With `info["task"]["goal"]` (push_to_target) it lines up behind the target and pushes it towards the goal."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.rng, self.size = rng, size
        self._target, self._left = None, 0
        self._orbit = float(rng.uniform(-0.4, 0.4))

    def act(self, info: dict[str, Any]) -> np.ndarray:
        puck = np.asarray(info["pusher"]["position"][:2])
        objs = [o for o in info["objects"] if not o["fell_off_table"]]
        task = info["task"]
        if "goal" in task:
            obj = next((o for o in objs if o["id"] == task["target"]), None)
            goal = np.asarray(task["goal"])
        else:
            if self._left <= 0 or self._target not in {o["id"] for o in objs}:
                self._target = objs[int(self.rng.integers(len(objs)))]["id"] if objs else None
                self._left = int(self.rng.integers(20, 60))
            self._left -= 1
            obj = next((o for o in objs if o["id"] == self._target), None)
            goal = None
        v = np.zeros(2)
        if obj is not None:
            p = np.asarray(obj["position"][:2])
            if goal is not None:
                push_dir = (goal - p) / (np.linalg.norm(goal - p) + 1e-9)
                behind = p - push_dir * (obj["size"] + 0.08)
                to_behind = behind - puck
                v = to_behind if np.linalg.norm(to_behind) > 0.04 else push_dir
            else:
                v = p - puck
            v = v / (np.linalg.norm(v) + 1e-9)
        a = np.zeros(self.size, np.float32)
        if self.size in (2, 5):
            a[:2] = v
        if self.size in (3, 5):
            cam = a[-3:]
            cam[0] = self._orbit
            cam[2] = float(self.rng.normal(0, 0.1))
        return np.clip(a, -1, 1)


class OrbitBackPolicy(PusherPolicy):
    """Physics with a camera action: pushes objects as `PusherPolicy` does, and every so often parks the puck and
    orbits the camera away (4-6 steps at 0.6-1.0 of the orbit rate) and back to the same azimuth within 12 steps:
    the physics counterpart of the voxel `LookBackPolicy` (at the physics recipe's 240 deg/s, 38-96 degrees)."""

    SETTLE = 2  # still steps before an excursion: the puck stops

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        super().__init__(rng, size)
        self._plan: list[float] = []  # orbit action per step of the excursion under way
        self._push = int(rng.integers(6, 24))

    def act(self, info: dict[str, Any]) -> np.ndarray:
        if self.size not in (3, 5) or (not self._plan and self._push > 0):
            self._push -= 1
            return super().act(info)
        if not self._plan:
            rng = self.rng
            sign = 1.0 if rng.random() < 0.5 else -1.0
            speed, out = float(rng.uniform(0.6, 1.0)), int(rng.integers(4, 7))
            total = speed * out
            back = int(rng.integers(int(np.ceil(total - 1e-9)), 7))
            hold = int(rng.integers(0, 12 - out - back + 1))
            self._plan = ([0.0] * self.SETTLE + [sign * speed] * out + [0.0] * hold
                          + [-sign * total / back] * back)
            self._push = int(rng.integers(6, 24))
        a = np.zeros(self.size, np.float32)
        a[-3] = self._plan.pop(0)
        return a


# The navigation table the RL agents act through (worldsim.dream.wrappers.NAVIGATE, which the dream layer keeps
# itself: it may not import datagen; tests/test_seeker.py checks the two are the same): no-op, forward,
# forward + jump, turn left / right 15 degrees, forward steering left / right 5 degrees, sprint forward.
NAVIGATE_TABLE: tuple[dict[str, Any], ...] = (
    {}, {"forward": 1}, {"forward": 1, "jump": 1}, {"camera": (0.0, -15.0)}, {"camera": (0.0, 15.0)},
    {"forward": 1, "camera": (0.0, -5.0)}, {"forward": 1, "camera": (0.0, 5.0)}, {"forward": 1, "sprint": 1},
)


class TablePolicy:
    """Uniformly random entries of the navigation table (`NAVIGATE_TABLE`), each kept for another step with
    probability `repeat` (runs of 1 / (1 - repeat) steps on average; 0.5: 2): the walks a PPO agent acting through
    that table makes before it has learned anything. The data policies above never stand still after walking, turn
    on the spot 15 degrees at a time or jump mid-stride as such an agent does, so a model trained on their walks
    alone misjudges these steps (docs/rl.md)."""

    def __init__(self, rng: np.random.Generator, repeat: float = 0.5) -> None:
        if not 0.0 <= repeat < 1.0:
            raise ValueError(f"repeat must be in [0, 1), got {repeat}")
        self.rng, self.repeat = rng, repeat
        self.last: int | None = None

    def act(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.last is None or self.repeat == 0.0 or self.rng.random() >= self.repeat:  # 0: one draw a step
            self.last = int(self.rng.integers(len(NAVIGATE_TABLE)))
        a = noop()
        for k, v in NAVIGATE_TABLE[self.last].items():
            a[k] = np.asarray(v, np.float32) if k == "camera" else v
        return a


POLICIES = ["explorer", "lookback", "mix", "random", "seeker", "solver", "table"]
SOLVERS = {"navigate": NavigateSolver, "collect_wood": CollectWoodSolver, "build": BuildSolver,
           "explore": ExplorerPolicy}


class StickyRandomPolicy:
    """Another game's default policy: a uniformly random action of its space, repeated with probability `repeat` at
    each step (runs of 1 / (1 - repeat) steps on average), so that moves last long enough to show their effect."""

    def __init__(self, rng: np.random.Generator, space: Any, repeat: float = 0.75) -> None:
        self.rng, self.space, self.repeat = rng, space, repeat
        self.space.seed(int(rng.integers(2**31)))
        self.last: Any = None

    def act(self, info: dict) -> Any:
        if self.last is None or self.rng.random() >= self.repeat:
            self.last = self.space.sample()
        return self.last


GAME_POLICIES = ["mix", "random", "ppo"]  # other games: `mix` is the sticky random policy too; `ppo` a trained one


def make_policy_for(name: str, rng: np.random.Generator, env: Any, task: str) -> Any:
    """A policy for an env: `random`, `explorer` (voxel) / pusher (physics), `solver` (the task's script),
    `seeker` (voxel navigate from the frame alone: scans for the goal pillar's colour and walks at it, see
    SeekerPolicy), `table` (voxel: random entries of the RL agents' navigation table, see TablePolicy),
    `lookback` (voxel: explores and now and then looks away and back, see LookBackPolicy; physics with a camera
    action: pushes and now and then orbits away and back, OrbitBackPolicy), or `mix` (one of those
    per episode, drawn from `rng`: voxel 40% explorer, 25% solver, 15% random, 20% lookback; physics 50% pusher,
    30% solver, 20% random, and with a camera action 35% pusher, 20% solver, 20% random, 25% lookback)."""
    if isinstance(env, GameSource):  # another game
        if name not in GAME_POLICIES:
            raise ValueError(f"policy {name!r} drives the worldsim engines; another game's data comes from "
                             f"{GAME_POLICIES} (random / mix: sticky random actions; ppo: trained in the game first)")
        return StickyRandomPolicy(rng, env.action_space)
    physics = not hasattr(env.action_space, "spaces")
    if physics and name in ("seeker", "table"):
        what = "looks for the voxel navigate goal pillar" if name == "seeker" else "plays the voxel navigation table"
        raise ValueError(f"policy {name!r} {what}; the physics engine's policies are explorer, lookback, mix, "
                         "random and solver")
    if name == "mix":
        if physics and env.action_space.shape[0] in (3, 5):
            name = ["explorer", "solver", "random", "lookback"][int(rng.choice(4, p=[0.35, 0.2, 0.2, 0.25]))]
        elif physics:
            name = ["explorer", "solver", "random"][int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
        else:
            name = ["explorer", "solver", "random", "lookback"][int(rng.choice(4, p=[0.4, 0.25, 0.15, 0.2]))]
    if physics:
        size = int(env.action_space.shape[0])
        if name == "random":
            return BoxRandomPolicy(rng, size)
        if name in ("explorer", "solver"):
            return PusherPolicy(rng, size)
        if name == "lookback":
            if size not in (3, 5):
                raise ValueError("policy 'lookback' on the physics engine orbits the camera: use control=camera or "
                                 "control=both")
            return OrbitBackPolicy(rng, size)
    else:
        if name == "random":
            return RandomPolicy(rng)
        if name == "explorer":
            return ExplorerPolicy(rng)
        if name == "solver":
            return SOLVERS.get(task, ExplorerPolicy)(rng)
        if name == "lookback":
            return LookBackPolicy(rng)
        if name == "seeker":
            return SeekerPolicy(rng)
        if name == "table":
            return TablePolicy(rng)
    raise ValueError(f"unknown policy {name!r}; choose one of {POLICIES}")
