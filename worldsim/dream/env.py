"""The learned simulator as gymnasium environments: `DreamEnv` (one) and `DreamVectorEnv` (a batch in one model call).

    import gymnasium as gym, worldsim
    env = gym.make("worldsim/Dream-v0", checkpoint="runs/dit")          # same spaces as the engine it learned
    obs, info = env.reset(seed=0)                                      # context from a held-out store episode
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    venv = worldsim.DreamVectorEnv.from_checkpoint("runs/dit", num_envs=32)  # autoreset: next step (default)
    env = DreamEnv(DreamCore(sampler, rows=1), source, reward_model)   # or from parts (a model built in memory)

Reset sources (`options`): a store episode (default: the held-out episodes recorded in the checkpoint; or
`options["store"]`, with optional `"episode"` and `"start"`), `options["frames"]` (an image (H, W, 3) or a clip
(F, H, W, 3) uint8 at the model's size), or `options["prompt"]` (the first frames generated from text). Rewards and
terminations come from a reward model (`worldsim train-reward`, found in `<run>/reward` or given as `reward=`); without
one the env warns once and returns reward 0 and never terminates. Episodes are truncated at `max_episode_steps`.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from store.spaces import flatten_action, space_from_spec
from worldsim.dream.core import DreamCore
from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.goal_map import GOAL_KEYS
from worldsim.model.sampler import WorldSampler


class ContextSource:
    """Starting contexts for dreamed episodes: store episodes, given frames, or a prompt."""

    def __init__(self, sampler: WorldSampler, store: str | None, context: int) -> None:
        self.sampler, self.store, self.context = sampler, store, context
        self._episodes: dict[str, tuple[str, list[int]]] = {}  # store url -> (its frames store, episode indices)
        self._cache: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    def _frames_store(self, url: str) -> str:
        """A latent store (worldsim cache-latents) points to the frames it was made from."""
        from store import open_store

        root = open_store(url)
        lat = root.attrs.get("latents")
        if not lat:
            spec = root.attrs.get("action_spec", {})
            if spec != self.sampler.meta.get("action_spec"):
                raise InputError(f"store {url} has another action spec than the checkpoint's: it was recorded from "
                                 f"another game; pass a store of the game the model learned")
            return url
        src = str(lat.get("source", ""))
        if not src or not (Path(src).exists() or "://" in src):
            raise InputError(f"store {url} holds latents and its source frames store {src!r} is not available; pass "
                             f"store=FRAMES_STORE (or options['store'])")
        return self._frames_store(src)

    def episodes(self, store: str | None) -> list[tuple[str, int]]:
        """(store url, episode index) pairs to start from: a given store's episodes, else the held-out ones."""
        from store import episode_indices

        if store:
            urls, last = [store], None
        else:
            held = self.sampler.meta.get("heldout", {})
            # the last val_episodes episodes of each training store were held out; with none held out (a separate
            # held-out store was used), resets draw from the training episodes: pass store= to start elsewhere
            urls, last = list(held.get("stores", [])), int(held.get("val_episodes", 1)) or None
            if not urls:
                raise InputError("this checkpoint records no held-out store; pass store=PATH (or options['store'])")
        out = []
        for url in urls:
            if url not in self._episodes:  # once per store: resets (autoreset included) reopen nothing
                src = self._frames_store(url)
                self._episodes[url] = (src, episode_indices(src))
            src, eps = self._episodes[url]
            out += [(src, i) for i in (eps[-last:] if last else eps)]
        return out

    def _episode(self, url: str, index: int) -> dict[str, Any]:
        from store import read_episode

        key = (url, index)
        if key not in self._cache:
            ep = read_episode(url, index)
            if ep["frames"].shape[1:3] != (self.sampler.height, self.sampler.width):
                raise InputError(f"store {url} episode {index} has {ep['frames'].shape[1]}x{ep['frames'].shape[2]} "
                                 f"frames; the model makes {self.sampler.height}x{self.sampler.width}")
            self._cache[key] = ep
            if len(self._cache) > 8:
                self._cache.popitem(last=False)
        return self._cache[key]

    def draw(self, rng: np.random.Generator, options: dict[str, Any]) -> dict[str, Any]:
        """frames (F, H, W, 3), actions (F, A) or None, prompt, and what was used (for `info`)."""
        unknown = set(options) - {"store", "episode", "start", "frames", "prompt"}
        if unknown:
            raise InputError(f"unknown reset option(s) {sorted(unknown)}; use store, episode, start, frames, prompt")
        if "frames" in options:
            return {"frames": self._check_frames(options["frames"]), "actions": None,
                    "prompt": str(options.get("prompt", "")), "source": "frames"}
        if "prompt" in options:
            return self._from_prompt(str(options["prompt"]), rng)
        return self._from_store(rng, options)

    def _check_frames(self, frames: Any) -> np.ndarray:
        f = np.asarray(frames)
        if f.ndim == 3:
            f = f[None]
        h, w = self.sampler.height, self.sampler.width
        if f.ndim != 4 or f.shape[1:] != (h, w, 3) or f.dtype != np.uint8 or len(f) == 0:
            raise InputError(f"options['frames'] must be uint8 (H, W, 3) or (F, H, W, 3) with H, W = {h}, {w} (the "
                             f"model's size), got {f.dtype} {f.shape}")
        return f

    def _from_prompt(self, prompt: str, rng: np.random.Generator) -> dict[str, Any]:
        tok = self.sampler.model.tokenizer
        if tok is not None and tok.known(prompt) == 0:
            raise InputError(f"no word of the prompt {prompt!r} is in the model's vocabulary; try one like "
                             f"{self.sampler.example_prompt()!r}")
        frames = self.sampler.t2v(prompt, frames=self.context, steps=8, seed=int(rng.integers(2**31)))
        return {"frames": frames, "actions": None, "prompt": prompt, "source": "prompt"}

    def _from_store(self, rng: np.random.Generator, options: dict[str, Any]) -> dict[str, Any]:
        pairs = self.episodes(options.get("store") or self.store)
        if "episode" in options:
            want = int(options["episode"])
            pairs = [p for p in pairs if p[1] == want]
            if not pairs:
                raise InputError(f"episode {want} is not among the reset episodes "
                                 f"{sorted({i for _, i in self.episodes(options.get('store') or self.store)})}")
        url, index = pairs[int(rng.integers(len(pairs)))]
        ep = self._episode(url, index)
        n = len(ep["frames"])
        if "start" in options:
            start = int(options["start"])
            if not 0 <= start < n:
                raise InputError(f"start {start} is outside episode {index} ({n} frames)")
        else:
            start = int(rng.integers(0, max(n - self.context, 0) + 1))
        end = min(start + self.context, n)
        # rewards[t] belongs to frames[t] -> frames[t + 1]: those between the context frames
        out = {"frames": ep["frames"][start:end], "actions": ep["actions"][start:end],
               "rewards": np.asarray(ep["rewards"][start : end - 1], np.float32),
               "prompt": ep["episode_short"], "source": "store", "store": url, "episode": index, "start": start}
        if "task_state" in ep:  # what the engine knew at each context frame (a reward model may start from it)
            out.update(task_state=ep["task_state"][start:end], task_state_keys=ep["task_state_keys"])
        return out


def reward_model_for(checkpoint: str, reward: str | None, sampler: WorldSampler) -> Any:
    """The reward/termination model: `reward` if given, else `<run>/reward` beside the checkpoint, else None.
    It reads the world model's VAE latents, so one trained on another VAE's latents is refused."""
    from worldsim.model.reward import find_reward, load_reward

    path = reward or find_reward(checkpoint)
    if path is None:
        warnings.warn(f"no reward model for {checkpoint} (train one: worldsim train-reward ckpt={checkpoint} "
                      f"store=...); DreamEnv returns reward 0 and never terminates", stacklevel=4)
        return None
    model = load_reward(path, device=sampler.device)
    theirs, ours = model.meta.get("vae", {}).get("digest"), sampler.meta.get("vae", {}).get("digest")
    if theirs != ours:
        raise C.CheckpointError(f"reward={path} was trained on the latents of another VAE ({str(theirs)[:12]}...) "
                                f"than {checkpoint} uses ({str(ours)[:12]}...); train one for this model: "
                                f"worldsim train-reward ckpt={checkpoint} store=...")
    return model


def _parts(checkpoint: str | Path, rows: int, reward: str | None, store: str | None, steps: int | None,
           cfg_actions: float, context: int | None, device: str, precision: str, decoder: str = "auto",
           student: str = "auto", render: str = "carry") -> tuple[DreamCore, ContextSource, Any]:
    """The stepping core, context source and reward model of a checkpoint (what `from_checkpoint` builds)."""
    from worldsim.model.sampler import find_student

    if student not in ("auto", "none") and not Path(student).exists():
        raise InputError(f"student={student}: auto, none, or the path of a worldsim distill run")
    path: str | Path = checkpoint
    if student != "none" and (steps is None or steps == 1):  # a student draws in one step only
        path = (find_student(checkpoint) if student == "auto" else student) or checkpoint
    sampler = WorldSampler.load(path, device=device, decoder=decoder)
    core = DreamCore(sampler, rows, steps=steps, cfg_actions=cfg_actions, context=context, precision=precision,
                     render=render)
    return core, ContextSource(sampler, store, core.context), reward_model_for(str(checkpoint), reward, sampler)


class _Dream:
    """What DreamEnv and DreamVectorEnv share: the stepping core, the context source, the reward model, spaces."""

    def _setup(self, core: DreamCore, source: ContextSource | None, reward_model: Any, max_episode_steps: int | None
               ) -> None:
        if max_episode_steps is not None and max_episode_steps < 1:
            raise InputError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.core, self.sampler = core, core.sampler
        self.action_spec = self.sampler.meta.get("action_spec")
        if not self.action_spec:
            raise C.CheckpointError("the world model records no action spec; retrain it with this version of worldsim")
        self.source = source if source is not None else ContextSource(self.sampler, None, core.context)
        self.reward_model = reward_model
        # per row: the reward model's state (what the episode showed so far, the last reward), warmed at reset
        self.reward_state = reward_model.initial(core.rows) if reward_model is not None else None
        # per row: the reset gave the reward model the task's state, so a tracking head follows it (`task_estimate`)
        self.tracking = np.zeros(core.rows, bool)
        # a world model with goal maps and a reward model that tracks the goal's offsets: steps feed its estimate
        self.goal_from_reward = bool(core.goal.shape[2]) and self._tracks() and \
            list(reward_model.meta.get("task_state_keys") or [])[:2] == list(GOAL_KEYS)
        self.max_episode_steps = max_episode_steps  # None: no limit here (gym.make's TimeLimit owns it then)
        self.elapsed = np.zeros(core.rows, np.int64)
        self.single_obs_space = spaces.Box(0, 255, (self.sampler.height, self.sampler.width, 3), dtype=np.uint8)
        self.single_act_space = space_from_spec(self.action_spec)

    def _reset_rows(self, rows: list[int], rngs: list[np.random.Generator], options: dict[str, Any]
                    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        drawn = [self.source.draw(rng, options) for rng in rngs]
        seeds = [int(rng.integers(2**62)) for rng in rngs]
        context = self.core.reset_rows(rows, [d["frames"] for d in drawn], [d["actions"] for d in drawn],
                                       [d["prompt"] for d in drawn], seeds, [self._goals(d) for d in drawn])
        if self.reward_model is not None:
            for row, z, d in zip(rows, context, drawn):
                self.reward_state[row] = self._warm_reward(z, d)
                self.tracking[row] = self._tracks() and "task_state" in d
        self.elapsed[rows] = 0
        obs = np.stack([d["frames"][-1] for d in drawn])
        infos = [{k: v for k, v in d.items() if k not in ("frames", "actions", "rewards", "task_state",
                                                          "task_state_keys")} for d in drawn]
        return obs, self._with_task(rows, infos)

    def _goals(self, drawn: dict[str, Any]) -> np.ndarray | None:
        """The goal offsets (F, 2) at a reset's context frames for a world model with goal maps: the first two
        columns of the store's task state when they are the goal's (`goal_forward`, `goal_right`), else None."""
        keys = list(drawn.get("task_state_keys") or [])
        if not self.core.goal.shape[2] or keys[:2] != list(GOAL_KEYS):
            return None
        return np.asarray(drawn["task_state"], np.float32)[:, :2]

    def _tracks(self) -> bool:
        return self.reward_model is not None and bool(getattr(self.reward_model, "tracks", False))

    def task_estimate(self) -> np.ndarray | None:
        """(rows, K) float32: where the reward model's tracking head puts the task's state now (navigate: the goal's
        offset in blocks along the view's forward and right axes, as the engine's `info["task"]["state"]`), or None
        for a reward model that does not track it (`worldsim train-reward task_state=true model.odometry=true`, or
        `model.track=true`). Meaningful for rows whose reset gave the task's state (`tracking`: a reset from a store
        that records it)."""
        if not self._tracks():
            return None
        with torch.no_grad():
            return self.reward_model.tracked(self.reward_state[:, :-1]).float().cpu().numpy()

    def _with_task(self, rows: list[int], infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """infos of `rows` with "task_state" (`task_estimate`) and "task_state_keys" where the row tracks one."""
        if not self.tracking[rows].any():
            return infos
        estimate, keys = self.task_estimate(), list(self.reward_model.meta.get("task_state_keys") or [])
        return [{**info, "task_state": estimate[row], "task_state_keys": keys} if self.tracking[row] else info
                for row, info in zip(rows, infos)]

    def _warm_reward(self, z: torch.Tensor, drawn: dict[str, Any]) -> torch.Tensor:
        """The reward model's state after a row's context latents z (F, C, h, w): the transitions between them with
        their actions and recorded rewards (a store's); without actions they count as no-ops, without rewards the
        model's own predictions are carried."""
        n, acts, rewards = len(z) - 1, drawn["actions"], drawn.get("rewards")  # acts[i] follows frame i
        flat = np.zeros((n, self.core.model.spec.action_dim), np.float32) if acts is None else \
            np.asarray(acts, np.float32)[len(acts) - n - 1 : len(acts) - 1]
        scaled = torch.from_numpy(flat).to(z.device)[None] / self.core.model.action_scale
        if rewards is not None:
            rewards = torch.from_numpy(np.asarray(rewards, np.float32)[len(rewards) - n :]).to(z.device)[None]
        task = self._task_state(n, drawn)
        if task is None and getattr(self.reward_model, "odo", None) is not None:
            raise InputError("this reward model tracks the goal from the task state at the first frame "
                             "(model.odometry=true): reset from a store that records data/task_state, not from "
                             f"{drawn.get('source', 'frames or a prompt')}")
        # a store records the task's state at every context frame: the tracked point starts from the last one's
        last = None if task is None else torch.from_numpy(np.asarray(drawn["task_state"][-1], np.float32))[None]
        return self.reward_model.warm(z[None].float(), scaled, rewards, task, last)[0]

    def _task_state(self, n: int, drawn: dict[str, Any]) -> torch.Tensor | None:
        """(1, K) task state at the first of the n + 1 context frames the reward model is warmed on, for a reward
        model that starts from it; None where it has none or the reset has none (frames or a prompt: the model
        then knows only what the frames show)."""
        want = self.reward_model.meta.get("task_state_keys") or []
        if not getattr(self.reward_model.cfg, "task_dim", 0) or "task_state" not in drawn:
            return None
        if list(drawn["task_state_keys"]) != list(want):
            raise InputError(f"the reward model starts from the task state {want}, but the reset's store records "
                             f"{list(drawn['task_state_keys'])}")
        row = drawn["task_state"][len(drawn["task_state"]) - n - 1]
        return torch.from_numpy(np.asarray(row, np.float32))[None]

    def _step_all(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """flat actions (B, A) -> obs (B, H, W, 3), reward (B,), terminated (B,), truncated (B,)."""
        prev = self.core.last
        acts = torch.from_numpy(flat)
        # a model with goal maps draws the goal where the reward model puts it (rows it tracks)
        goal = self.task_estimate()[:, :2] if self.goal_from_reward and self.tracking.any() else None
        z = self.core.step(acts, goal, self.tracking.copy())
        obs = self.core.frames()
        if self.reward_model is not None:
            scaled = acts.to(z.device) / self.core.model.action_scale
            r, term, self.reward_state = self.reward_model.predict(prev.float(), z.float(), scaled,
                                                                   self.reward_state.to(z.device))
            reward, terminated = r.float().cpu().numpy(), term.cpu().numpy().astype(bool)
        else:
            reward, terminated = np.zeros(len(flat), np.float32), np.zeros(len(flat), bool)
        self.elapsed += 1
        limit = self.max_episode_steps if self.max_episode_steps is not None else np.iinfo(np.int64).max
        truncated = (self.elapsed >= limit) & ~terminated
        return obs, reward.astype(np.float32), terminated, truncated


class DreamEnv(_Dream, gym.Env):
    """A world model as a gymnasium env with the spaces of the engine it learned, built from its parts.

        env = DreamEnv.from_checkpoint("runs/dit")                  # what gym.make("worldsim/Dream-v0", ...) calls
        env = DreamEnv(DreamCore(sampler, rows=1), source, reward)   # parts, e.g. an untrained model in memory

    Args:
        core: the stepping core (`DreamCore`, one row).
        source: where resets take their context (`ContextSource`); default: given frames or a prompt only.
        reward_model: rewards and terminations (`worldsim.model.reward`); None: reward 0, never terminates.
        max_episode_steps: truncation horizon, or None for none here (gym.make's TimeLimit then truncates: one
            owner of truncation either way).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, core: DreamCore, source: ContextSource | None = None, reward_model: Any = None,
                 max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if core.rows != 1:
            raise InputError(f"DreamEnv steps one row; this core has {core.rows} (use DreamVectorEnv)")
        self._setup(core, source, reward_model, max_episode_steps)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.sampler.fps}
        self.observation_space = self.single_obs_space
        self.action_space = self.single_act_space
        self._obs: np.ndarray | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, reward: str | None = None, store: str | None = None,
                        steps: int | None = None, cfg_actions: float = 1.0, context: int | None = None,
                        max_episode_steps: int | None = 200, device: str = "cpu", precision: str = "bf16",
                        render_mode: str | None = None, decoder: str = "auto", student: str = "auto",
                        render: str = "carry") -> DreamEnv:
        """A DreamEnv of a trained checkpoint.

        Args:
            checkpoint: a `worldsim train` run directory (its latest checkpoint) or one checkpoint.
            reward: a reward model (`worldsim train-reward`); default `<run>/reward` if present.
            store: where resets take their context (default: the checkpoint's held-out episodes).
            steps: Euler steps per frame (default: the checkpoint's, `WorldSampler.dream_steps`); cfg_actions:
                guidance on the action (1 = off).
            context: latent frames of context (default: the trained window minus one).
            max_episode_steps: truncation horizon (None: none).
            decoder: "auto" (the light decoder `worldsim distill-decoder` made for this checkpoint when there is
                one, else the VAE's), "full", "light", or a light decoder's path (`WorldSampler.load`).
            student: "auto" (the one-step student `worldsim distill` made from this checkpoint, `<run>/student`,
                when there is one and `steps` is None or 1: faster, docs/benchmarks.md), "none" (the checkpoint
                itself), or a student's path. `env.sampler.meta["teacher"]` says when a student dreams.
            render: "carry" (observations with pixel carry where the model can: the previous frame's pixels moved
                by the model's warp where it kept them, worldsim/model/render.py) or "latent" (the latents decoded).
        """
        parts = _parts(checkpoint, 1, reward, store, steps, cfg_actions, context, device, precision, decoder,
                       student, render)
        return cls(*parts, max_episode_steps=max_episode_steps, render_mode=render_mode)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, infos = self._reset_rows([0], [self.np_random], dict(options or {}))
        self._obs = obs[0]
        return obs[0], infos[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        flat = flatten_action(self.action_spec, self.action_space, action)[None]
        obs, reward, terminated, truncated = self._step_all(flat)
        self._obs = obs[0]
        info = self._with_task([0], [{"step": int(self.elapsed[0])}])[0]
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        return self._obs if self.render_mode == "rgb_array" else None


class DreamVectorEnv(_Dream, VectorEnv):
    """`num_envs` dreamed episodes stepped in one batched model call. Same arguments as `DreamEnv`, plus:

    Args:
        autoreset_mode: `next_step` (gymnasium's default: the step after an episode ends resets it, ignores its
            action and returns the first observation with reward 0) or `same_step` (the ending step already returns
            the next episode's first observation; the last one is in `info["final_obs"]`, as stable-baselines3
            expects).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, core: DreamCore, source: ContextSource | None = None, reward_model: Any = None,
                 max_episode_steps: int | None = 200, autoreset_mode: str | AutoresetMode = "next_step") -> None:
        num_envs = core.rows
        modes = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}
        mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else modes.get(str(autoreset_mode).lower())
        if mode not in modes.values():
            raise InputError(f"autoreset_mode must be next_step or same_step, got {autoreset_mode!r}")
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self._setup(core, source, reward_model, max_episode_steps)
        self.num_envs = num_envs
        self.single_observation_space = self.single_obs_space
        self.single_action_space = self.single_act_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.rngs = [np.random.default_rng(i) for i in range(num_envs)]
        self.options: dict[str, Any] = {}
        self.needs_reset = np.zeros(num_envs, bool)
        self.started = False

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, num_envs: int = 1, reward: str | None = None,
                        store: str | None = None, steps: int | None = None, cfg_actions: float = 1.0,
                        context: int | None = None, max_episode_steps: int | None = 200, device: str = "cpu",
                        precision: str = "bf16", autoreset_mode: str | AutoresetMode = "next_step",
                        decoder: str = "auto", student: str = "auto", render: str = "carry") -> DreamVectorEnv:
        """`num_envs` dreams of a trained checkpoint; the other arguments as `DreamEnv.from_checkpoint`."""
        if num_envs < 1:
            raise InputError(f"num_envs must be >= 1, got {num_envs}")
        parts = _parts(checkpoint, num_envs, reward, store, steps, cfg_actions, context, device, precision,
                       decoder, student, render)
        return cls(*parts, max_episode_steps=max_episode_steps, autoreset_mode=autoreset_mode)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed if isinstance(seed, int) or seed is None else None)
        if seed is None:
            seeds = [int(self.np_random.integers(2**31)) for _ in range(self.num_envs)]
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise InputError(f"seed must be an int or a list of {self.num_envs} seeds, got {len(seed)}")
            seeds = list(seed)
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.options = dict(options or {})
        obs, infos = self._reset_rows(list(range(self.num_envs)), self.rngs, self.options)
        self.needs_reset[:] = False
        self.started = True
        return obs, self._batch_infos(infos)

    def _batch_infos(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, info in enumerate(infos):
            out = self._add_info(out, info, i)
        return out

    def _flat_actions(self, actions: Any) -> np.ndarray:
        if isinstance(self.single_action_space, spaces.Dict):
            if not isinstance(actions, dict):
                raise InputError(f"actions must be a dict of arrays with keys {list(self.single_action_space.spaces)}")
            rows = [{k: np.asarray(v)[i] for k, v in actions.items()} for i in range(self.num_envs)]
        elif isinstance(self.single_action_space, spaces.Tuple):
            if not isinstance(actions, tuple | list) or len(actions) != len(self.single_action_space.spaces):
                raise InputError(f"actions must be a tuple of {len(self.single_action_space.spaces)} batched parts")
            rows = [tuple(np.asarray(part)[i] for part in actions) for i in range(self.num_envs)]
        else:  # Discrete (one value per env), MultiDiscrete, MultiBinary, Box
            rows = list(np.asarray(actions).reshape(self.num_envs, *self.single_action_space.shape))
        return np.stack([flatten_action(self.action_spec, self.single_action_space, a) for a in rows])

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self.started:
            raise RuntimeError("call reset() before step()")
        flat = self._flat_actions(actions)
        obs, reward, terminated, truncated = self._step_all(flat)
        infos = self._with_task(list(range(self.num_envs)), [{"step": int(s)} for s in self.elapsed])
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            ended = [int(i) for i in np.flatnonzero(terminated | truncated)]
            if ended:  # the ending step returns the next episode's first frame; the last frame goes in the info
                r_obs, r_infos = self._reset_rows(ended, [self.rngs[i] for i in ended], self.options)
                for j, i in enumerate(ended):
                    infos[i] = {**r_infos[j], "final_obs": obs[i].copy(), "final_info": infos[i]}
                    obs[i] = r_obs[j]
            return obs, reward, terminated, truncated, self._batch_infos(infos)
        restart = list(np.flatnonzero(self.needs_reset))
        if restart:  # NEXT_STEP autoreset: these envs ended last step; this step starts them again
            r_obs, r_infos = self._reset_rows(restart, [self.rngs[i] for i in restart], self.options)
            for j, i in enumerate(restart):
                obs[i], infos[i] = r_obs[j], r_infos[j]
            reward[restart], terminated[restart], truncated[restart] = 0.0, False, False
        self.needs_reset = terminated | truncated
        return obs, reward, terminated, truncated, self._batch_infos(infos)


def make_dream_env(**kwargs: Any) -> DreamEnv:
    """gym.make("worldsim/Dream-v0", checkpoint=...): `DreamEnv.from_checkpoint` without a limit of its own
    (`max_episode_steps` belongs to gym.make, whose TimeLimit truncates)."""
    return DreamEnv.from_checkpoint(**{"max_episode_steps": None, **kwargs})


def make_dream_vector_env(num_envs: int = 1, **kwargs: Any) -> DreamVectorEnv:
    """gym.make_vec("worldsim/Dream-v0", num_envs=N, checkpoint=...): `DreamVectorEnv.from_checkpoint`."""
    return DreamVectorEnv.from_checkpoint(num_envs=num_envs, **kwargs)
