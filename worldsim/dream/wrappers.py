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

`LearnedReward` plays the other way round: a real env whose reward and termination come from a reward model reading
its frames (`worldsim train-reward`), the same model DreamEnv pays its agents with. Training an agent there against
one in the dream says which of the two costs the transfer: the dream's pictures and dynamics, or the learned reward
(docs/rl.md).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from store.spaces import flatten_action, space_from_spec
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


def engine_task_state(info: dict[str, Any]) -> Any:
    """The task's state in an engine's info (the voxel engine's `info["task"]["state"]`), or None."""
    task = info.get("task")
    return task.get("state") if isinstance(task, dict) else None


class LearnedReward(gym.Wrapper):
    """A real env paid by a learned reward model instead of its own reward: each step, the model reads the VAE
    latents of the frame before and after and the action taken, as in `DreamEnv`, and its reward and termination
    are returned; the env's own go in `info["engine_reward"]` and `info["engine_terminated"]`. An episode ends where
    the model says it ended (`ends`), and also where the env itself ended (its world cannot go on), reported as
    terminated.

    A reward model that tracks the task's state from its first frame (`model.odometry=true`) starts at each reset
    from the env's state (`task_state(info)`, the voxel engine's `info["task"]["state"]`), as a dream starts from a
    store's; its estimate is `info["task_estimate"]` after every reset and step.

        sampler, model = WorldSampler.load("runs/dit"), load_reward("runs/dit/reward")
        env = DiscreteActions(LearnedReward(gym.make("worldsim/Voxel-v0", task="navigate"), sampler, model), NAVIGATE)

    Args:
        env: an env with the world model's observation size and action space (`sampler.meta["action_spec"]`).
        sampler: the world model (`WorldSampler`) whose VAE the reward model was trained on; only its encoder and
            action scale are used. Share one between many envs.
        reward_model: a `worldsim.model.reward.RewardModel` of that VAE's latents.
        task_state: reads the task's state from a reset's info (None where the env has none).
        threshold: termination probability above which the model says the episode ended
            (`info["model_terminated"]`).
        ends: whether the model's termination ends the episode (False: only the env's own ends do; to score the
            model along whole episodes).
    """

    def __init__(self, env: gym.Env, sampler: Any, reward_model: Any,
                 task_state: Any = engine_task_state, threshold: float = 0.5, ends: bool = True) -> None:
        super().__init__(env)
        spec = sampler.meta.get("action_spec")
        if not spec:
            raise InputError("the world model records no action spec; retrain it with this version of worldsim")
        if space_from_spec(spec) != env.action_space:
            raise InputError(f"the env's actions {env.action_space} are not the world model's "
                             f"{space_from_spec(spec)}: the reward model reads the world model's actions")
        shape = getattr(env.observation_space, "shape", None)
        if shape != (sampler.height, sampler.width, 3):
            raise InputError(f"the env's frames {shape} are not the world model's "
                             f"({sampler.height}, {sampler.width}, 3): the reward model reads its VAE's latents")
        self.sampler, self.model, self.action_spec = sampler, reward_model, spec
        self.task_state, self.threshold, self.ends = task_state, threshold, ends
        self.state: Any = None
        self.z: Any = None

    @classmethod
    def parts(cls, checkpoint: str, reward: str | None = None) -> tuple[Any, Any]:
        """(sampler, reward model) of a world model run and its reward model (`reward`, default `<run>/reward`), to
        share between many `LearnedReward` envs; a reward model of another VAE's latents, or none, is refused."""
        from worldsim.dream.env import reward_model_for
        from worldsim.model.sampler import WorldSampler

        sampler = WorldSampler.load(checkpoint)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = reward_model_for(str(checkpoint), reward, sampler)
        if model is None:
            raise InputError(f"no reward model for {checkpoint}: pass one (worldsim train-reward ckpt={checkpoint} "
                             "store=...)")
        return sampler, model

    def _encode(self, frame: np.ndarray) -> Any:
        return self.sampler.encode(np.asarray(frame)[None])[0, :1].float()  # (1, C, h, w)

    def _estimate(self, info: dict[str, Any]) -> dict[str, Any]:
        if getattr(self.model, "tracks", False):
            estimate = self.model.tracked(self.state[:, :-1])[0].detach().float().cpu().numpy()
            info = {**info, "task_estimate": estimate}
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        obs, info = self.env.reset(seed=seed, options=options)
        self.z = self._encode(obs)
        task = self.task_state(info)
        if task is None and getattr(self.model, "odo", None) is not None:
            raise InputError("this reward model tracks the goal from the task state at the first frame "
                             "(model.odometry=true); the env's reset info has none (task_state=...)")
        want, keys = self.model.meta.get("task_state_keys") or [], (info.get("task") or {}).get("state_keys")
        if task is not None and want and keys is not None and list(keys) != list(want):
            raise InputError(f"the reward model starts from the task state {list(want)}, but the env's is {list(keys)}")
        if task is not None and getattr(self.model.cfg, "task_dim", 0):
            task = torch.as_tensor(np.asarray(task, np.float32))[None]
        else:  # a model that does not start from the task's state
            task = None
        with torch.no_grad():
            self.state = self.model.with_point(self.model.initial(1, task), task)
        return obs, self._estimate(info)

    def step(self, action: Any) -> Any:
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        obs, engine_reward, engine_terminated, truncated, info = self.env.step(action)
        flat = flatten_action(self.action_spec, self.env.action_space, action)
        scaled = torch.from_numpy(flat)[None].to(self.z.device) / self.sampler.model.action_scale
        z = self._encode(obs)
        reward, term, self.state = self.model.predict(self.z, z, scaled, self.state.to(self.z.device),
                                                      threshold=self.threshold)
        self.z = z
        info = {**info, "engine_reward": float(engine_reward), "engine_terminated": bool(engine_terminated),
                "model_terminated": bool(term[0])}
        terminated = (self.ends and bool(term[0])) or bool(engine_terminated)
        return obs, float(reward[0]), terminated, truncated and not terminated, self._estimate(info)
