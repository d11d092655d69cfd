"""Gymnasium wrappers for agents that play the engines and the learned simulator alike.

`DiscreteActions` turns a `Dict` action space (the voxel world's MineRL-style keys and camera) into `Discrete(n)`
over a table of partial actions, which is what off-the-shelf agents (stable-baselines3's PPO/DQN, CleanRL) expect.
It only uses gymnasium, so the same wrapper and table drive the real engine and `DreamEnv` (whose action space is
rebuilt from the checkpoint's action spec and equals the engine's):

    import envs, worldsim                                    # envs only where the engine is needed (examples/)
    from worldsim.dream.wrappers import NAVIGATE, DiscreteActions
    real = DiscreteActions(gym.make("worldsim/Voxel-v0", task="navigate", width=64, height=64), NAVIGATE)
    dream = DiscreteActions(gym.make("worldsim/Dream-v0", checkpoint="runs/dit"), NAVIGATE)

`RecordDream` writes dreamed episodes as MP4s with signed provenance (docs/provenance.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worldsim.errors import InputError

# Camera deltas are degrees per step, [pitch, yaw] (positive yaw turns right, MineRL's convention). 15 degrees is
# the largest turn the navigate solver makes per step (datagen/policies.py), so the world model saw such turns
# often; 5 degrees is a gentle steer while walking (the explorer drifts within +-8).
TURN, STEER = 15.0, 5.0
NAVIGATE: tuple[dict[str, Any], ...] = (
    {},  # no-op
    {"forward": 1},
    {"forward": 1, "jump": 1},  # steps are one block high: jump while walking to climb them
    {"camera": (0.0, -TURN)},  # turn left on the spot
    {"camera": (0.0, TURN)},  # turn right on the spot
    {"forward": 1, "camera": (0.0, -STEER)},
    {"forward": 1, "camera": (0.0, STEER)},
    {"forward": 1, "sprint": 1},
)
"""A navigation table for the voxel world (`task="navigate"`: walk to a glowing pillar 12-32 blocks away):
no-op, forward, forward + jump, turn left / right by 15 degrees, forward while steering left / right by 5 degrees,
sprint forward."""


def noop_action(space: spaces.Space) -> Any:
    """The "nothing pressed" action of a space: 0 (the start) for Discrete keys, zeros for Box keys (clipped into
    the box), recursively for Dict."""
    if isinstance(space, spaces.Dict):
        return {k: noop_action(s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return int(space.start)
    if isinstance(space, spaces.MultiBinary):
        return np.zeros(space.shape, np.int8)
    if isinstance(space, spaces.Box):
        return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high).astype(space.dtype)
    raise TypeError(f"no no-op for a {type(space).__name__} space; DiscreteActions supports Dict of Discrete, "
                    f"MultiBinary and Box")


def _value(key: str, space: spaces.Space, value: Any) -> Any:
    """A table entry's value for one key, converted to the key's space type and checked."""
    try:
        if isinstance(space, spaces.Discrete):
            out: Any = int(value)
            ok = out == value and space.contains(out)
        else:
            out = np.asarray(value, dtype=space.dtype)
            if out.size == int(np.prod(space.shape)):
                out = out.reshape(space.shape)
            ok = out.shape == space.shape and bool(np.all(np.isfinite(out))) and space.contains(out)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"table value {key}={value!r} is not in the action space's {key!r}: {space}")
    return out


def action_table(space: spaces.Space, table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Complete each partial action of `table` into a full action of the Dict `space` (no-op for the keys an entry
    leaves out), checking every value. What `DiscreteActions` plays; vectorised agents can index it directly.

    Raises:
        ValueError: the space is not a Dict, the table is empty, or an entry names an unknown key or a value outside
            its key's space (names the entry, the key and the value).
    """
    if not isinstance(space, spaces.Dict):
        raise InputError(f"DiscreteActions needs a Dict action space, got {space}")
    if len(table) == 0:
        raise InputError("the action table is empty; give at least one (partial) action")
    out = []
    for i, entry in enumerate(table):
        unknown = set(entry) - set(space.spaces)
        if unknown:
            raise InputError(f"action table entry {i} has unknown key(s) {sorted(unknown)}; the space's keys are "
                             f"{list(space.spaces)}")
        full = noop_action(space)
        try:
            full.update({k: _value(k, space[k], v) for k, v in entry.items()})
        except ValueError as err:
            raise InputError(f"action table entry {i}: {err}") from None
        out.append(full)
    return out


class DiscreteActions(gym.ActionWrapper):
    """`Discrete(len(table))` actions for an env with `Dict` actions: action i is `table[i]`, a partial dict over
    the Dict's keys, with every key it leaves out set to no-op (Discrete keys their start value, Box keys zeros).

    Args:
        env: an env whose action space is a `gymnasium.spaces.Dict` (the voxel engine, `DreamEnv` of it).
        table: the actions, e.g. `NAVIGATE`; each a mapping from some of the space's keys to values in them.

    Raises:
        ValueError: as `action_table`.
    """

    def __init__(self, env: gym.Env, table: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(env)
        self.table = action_table(env.action_space, table)
        self.action_space = spaces.Discrete(len(self.table))

    def action(self, action: Any) -> dict[str, Any]:
        """Index (an int or a 0-d integer array) -> a fresh copy of that Dict action."""
        a = np.asarray(action)
        if a.size != 1 or a.dtype.kind not in "biu" or not self.action_space.contains(int(a.reshape(()))):
            raise InputError(f"action {action!r} is not in {self.action_space}")
        chosen = self.table[int(a.reshape(()))]
        return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in chosen.items()}


def stack_actions(table: Sequence[Mapping[str, Any]], indices: Any) -> dict[str, np.ndarray]:
    """Indices (B,) into a completed table (`action_table`) -> the batched Dict action a vector env takes
    (`DreamVectorEnv.step`): each key stacked to (B, ...)."""
    idx = np.asarray(indices).reshape(-1)
    if idx.dtype.kind not in "iu" or idx.size == 0 or idx.min() < 0 or idx.max() >= len(table):
        raise InputError(f"indices must be integers in [0, {len(table) - 1}], got {np.asarray(indices).tolist()}")
    return {k: np.stack([np.asarray(table[i][k]) for i in idx]) for k in table[0]}


class RecordDream(gym.Wrapper):
    """Records each dreamed episode of a `DreamEnv` as `<folder>/<prefix>_<n>.mp4` with its provenance: the JSON
    beside it and a signed C2PA manifest inside (`trainedAlgorithmicMedia`; the checkpoint, its training stores, the
    light decoder and teacher when used, the reset seed, Euler steps, context and a sha256 of the actions taken).
    An episode is written when it ends (terminated or truncated), at the next reset, or at `close()`.

        env = RecordDream(DreamEnv.from_checkpoint("runs/dit"), "videos", every=10)   # episodes 0, 10, 20, ...

    Args:
        env: a DreamEnv, or a wrapper around one (the frames are its observations).
        folder: where the videos go (created).
        every: record episodes 0, every, 2 * every, ...
        prefix: the file name's start.
    """

    def __init__(self, env: gym.Env, folder: str, every: int = 1, prefix: str = "dream") -> None:
        super().__init__(env)
        if every < 1:
            raise InputError(f"every must be >= 1, got {every}")
        if not hasattr(env.unwrapped, "sampler"):
            raise InputError("RecordDream records a DreamEnv (worldsim/Dream-v0); this env has no world model")
        self.folder, self.every, self.prefix = folder, every, prefix
        self.episode, self.frames, self.actions, self.seed = -1, [], [], None
        self.written: list[str] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self._flush()
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode += 1
        self.seed = seed
        self.frames = [obs] if self.episode % self.every == 0 else []
        self.actions = []
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.frames:
            self.frames.append(obs)
            self.actions.append(json.dumps(action, default=_plain, sort_keys=True))
            if terminated or truncated:
                self._flush()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._flush()
        super().close()

    def _flush(self) -> None:
        if len(self.frames) < 2:
            self.frames = []
            return
        dream = self.env.unwrapped
        path = Path(self.folder) / f"{self.prefix}_{self.episode}.mp4"
        digest = hashlib.sha256("\n".join(self.actions).encode()).hexdigest()
        dream.sampler.write_video(np.stack(self.frames), path, mode="DreamEnv episode", episode=self.episode,
                                  seed=self.seed, steps=dream.core.steps, context=dream.core.context,
                                  actions_sha256=digest, steps_taken=len(self.actions))
        self.written.append(str(path))
        self.frames, self.actions = [], []


def _plain(x: Any) -> Any:
    """JSON for numpy values inside actions."""
    return np.asarray(x).tolist()
