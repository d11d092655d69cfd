"""Scripted engine episodes with ground truth, for probing what a world model simulates (`worldsim probe`).

    ep = voxel_probe("revisit", seed=3, width=64, height=64)
    ep["frames"]   # (N + 1, H, W, 3) uint8, the engine's frames
    ep["actions"]  # (N, 12) float32 flat voxel actions, stored-aligned: actions[t] leads from frame t to t + 1
    ep["marks"]    # frame indices of the moments the probe scores, e.g. {"start": 13, "leave": 16, "far": 22, ...}

Every probe starts with `warmup` steps of the explorer policy (walking, steering, looking around: the context the
world model is given, ending at frame `marks["start"]`), then stands still for a few steps and follows a script:

- `revisit`: turn 180 degrees of yaw in 6 steps and back in 6 (marks leave, far, back). Standing still, the engine's
  view on return is the view it left: a model with memory must draw it again.
- `interaction`: look down at the ground in front (pitch +30 degrees twice), hold `attack` until the block breaks
  (at most 8 steps), then turn 180 degrees away and back (marks before: the intact block, broken: just after the
  break, far, back). The hole is still there in the engine's return frame; is it in the model's?

The engine runs without animals, so what changes between frames is the probe's doing. Each episode records whether
its script did what it meant (`ok`: a block in reach was broken; the player stood still and faces on return the way
it left, not falling or drifting in water), so a scorer can skip the ones that did not.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers worldsim/Voxel-v0)
from datagen.policies import ExplorerPolicy
from envs.voxel.actions import noop, to_flat

KINDS = ("revisit", "interaction")
SETTLE = 3  # still steps after the warm-up: the player stops
TURN = (30.0, 6)  # degrees of yaw per step, steps each way: 180 degrees away and back


def _act(camera: tuple[float, float] = (0.0, 0.0), **keys: int) -> dict[str, Any]:
    a = noop()
    a.update(keys)
    a["camera"] = np.array(camera, np.float32)
    return a


def voxel_probe(kind: str, seed: int, width: int = 64, height: int = 64, warmup: int = 13) -> dict[str, Any]:
    """One scripted probe episode of the voxel engine (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown voxel probe {kind!r}; choose one of {list(KINDS)}")
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 step, got {warmup}")
    rng = np.random.default_rng([seed, 0x9B0BE])
    env = gym.make("worldsim/Voxel-v0", width=width, height=height, task="explore", animals=False,
                   start_hours=float(rng.uniform(8.0, 16.0)), max_episode_steps=None)
    frames, actions, marks = [], [], {}
    try:
        obs, info = env.reset(seed=int(seed))
        frames.append(obs)

        def step(a: dict[str, Any]) -> dict[str, Any]:
            o, _, _, _, inf = env.step(a)
            actions.append(to_flat(a))
            frames.append(o)
            return inf

        policy = ExplorerPolicy(rng)
        for _ in range(warmup):
            info = step(policy.act(info))
        marks["start"] = len(frames) - 1
        for _ in range(SETTLE):
            info = step(_act())
        ok = True
        if kind == "interaction":
            for _ in range(2):
                info = step(_act((30.0, 0.0)))
            marks["before"] = len(frames) - 1
            ok = info["target"]["kind"] == "block"
            broke = False
            for _ in range(8 if ok else 0):
                info = step(_act(attack=1))
                if any(e["type"] == "block_broken" for e in info["events"]):
                    broke = True
                    break
            ok = ok and broke
            marks["broken"] = len(frames) - 1
            info = step(_act())  # let go of attack: the next block is not started
        yaw, n = TURN
        sign = 1.0 if rng.random() < 0.5 else -1.0
        marks["leave"] = len(frames) - 1
        left = info["pose"]
        for _ in range(n):
            info = step(_act((0.0, sign * yaw)))
        marks["far"] = len(frames) - 1
        for _ in range(n):
            info = step(_act((0.0, -sign * yaw)))
        marks["back"] = len(frames) - 1
        # a revisit only when the player stood still (not falling, sliding or swimming) and faces the same way
        moved = float(np.linalg.norm(np.asarray(info["pose"]["position"]) - np.asarray(left["position"])))
        turned = abs((float(info["pose"]["yaw"]) - float(left["yaw"]) + 180.0) % 360.0 - 180.0)
        ok = ok and moved < 0.05 and turned < 1.0
    finally:
        env.close()
    return {"kind": kind, "seed": int(seed), "frames": np.stack(frames), "actions": np.stack(actions),
            "marks": marks, "ok": bool(ok), "engine": "worldsim/Voxel-v0", "size": [height, width]}
