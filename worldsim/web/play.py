"""Side-by-side play in the browser: one engine and (optionally) the dream of a checkpoint, started from the same
frame and driven by the same keys. Each session runs its engine and model on a thread of its own (an OpenGL context
belongs to the thread that made it), so the server's event loop never waits on a step."""

from __future__ import annotations

import contextlib
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.errors import InputError
from worldsim.web import controls

ENGINES = {"voxel": "worldsim/Voxel-v0", "physics": "worldsim/Physics-v0"}
PLAIN_SIZE = (160, 120)  # engine frames when no model is played beside it


@dataclass
class Side:
    """One pane's counters: frames stepped, the last reward, the episode's return, steps per second (smoothed)."""

    frames: int = 0
    reward: float | None = 0.0
    ret: float = 0.0
    rate: float = 0.0
    episode: int = 0

    def stepped(self, reward: float | None, seconds: float) -> None:
        self.frames += 1
        self.reward = reward
        self.ret += reward or 0.0
        now = 1.0 / max(seconds, 1e-6)
        self.rate = now if self.rate == 0 else 0.8 * self.rate + 0.2 * now

    def as_dict(self) -> dict[str, Any]:
        return {"frame": self.frames, "reward": self.reward, "return": round(self.ret, 4),
                "steps_per_s": round(self.rate, 1), "episode": self.episode}


def engine_tasks() -> dict[str, list[str]]:
    """The tasks of each engine, from the engines themselves."""
    from envs.physics.tasks import TASKS as PHYSICS
    from envs.voxel.tasks import TASKS as VOXEL

    return {"voxel": list(VOXEL), "physics": list(PHYSICS)}


def _engine_kwargs(engine: str, ckpt_meta: dict[str, Any] | None, task: str | None) -> dict[str, Any]:
    """The engine's kwargs: those of the checkpoint's training store when it learned this engine (so the action
    spaces agree), else the engine's defaults; `task` replaces the task."""
    kwargs: dict[str, Any] = {}
    for s in (ckpt_meta or {}).get("stores", []):
        job = s.get("job") or {}
        if job.get("env_id") == ENGINES.get(engine, engine):
            kwargs = dict(job.get("env_kwargs") or {})
            break
    else:
        if engine == "physics":
            kwargs = {"control": "both"}
    if task:
        allowed = engine_tasks().get(engine, [])
        if task not in allowed:
            raise InputError(f"task {task!r} is not a task of {engine}; choose one of {list(allowed)}")
        kwargs["task"] = task
    return kwargs


@dataclass
class PlaySession:
    """An engine (voxel, physics, or the game a checkpoint learned) and the dream of `ckpt` beside it."""

    engine: str
    seed: int = 0
    task: str | None = None
    ckpt: Path | None = None
    dream_steps: int | None = None
    size: tuple[int, int] = PLAIN_SIZE  # the engine's frame size when no model plays beside it
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="play"))

    def __post_init__(self) -> None:
        self.env: Any = None  # the engine, or a datagen GameSource for another game (the same reset/step)
        self.dream: Any = None
        self.meanings: list[str] | None = None
        self.sides = {"engine": Side(), "dream": Side()}
        self.obs: np.ndarray | None = None
        self.dream_obs: np.ndarray | None = None
        self.info: dict[str, Any] = {}
        self.has_reward = False

    # --- everything below runs on the session's own thread (call through `run`) ---
    def run(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` on this session's thread: await `asyncio.wrap_future(session.run(...))`."""
        return self.pool.submit(fn, *args)

    def open(self) -> dict[str, Any]:
        meta = None
        if self.ckpt is not None:
            from worldsim.dream.env import DreamEnv
            from worldsim.model import checkpoint as C

            meta = C.load_meta(C.resolve(self.ckpt), kind="dit")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # no reward model: the page says so
                self.dream = DreamEnv.from_checkpoint(self.ckpt, steps=self.dream_steps, max_episode_steps=None)
            self.has_reward = self.dream.reward_model is not None
            width, height = self.dream.sampler.width, self.dream.sampler.height
        else:
            width, height = self.size
        if self.engine in ENGINES:
            import envs

            kwargs = _engine_kwargs(self.engine, meta, self.task)
            self.env = envs.make(ENGINES[self.engine], width=width, height=height, render_mode="rgb_array", **kwargs)
        else:
            from datagen.games import GameSource

            self.env = GameSource.make(self.engine, {}, width=width, height=height)
            self.meanings = self.env.action_meanings()
        space = self.env.action_space
        if self.dream is not None and space != self.dream.action_space:
            raise InputError(f"the checkpoint learned another game than {self.engine} (its action space "
                             f"{self.dream.action_space} differs from the engine's {space})")
        self._reset(self.seed)
        return {"width": width, "height": height, "engine": self.engine, "dream": self.dream is not None,
                "reward_model": self.has_reward, "controls": self.help(),
                "decoder": self.dream.sampler.decoder_name if self.dream is not None else None}

    def help(self) -> str:
        if self.engine == "voxel":
            return controls.VOXEL_HELP
        if self.engine == "physics":
            return controls.PHYSICS_HELP
        n = int(getattr(self.env.action_space, "n", 0))
        return controls.discrete_help(n, self.meanings)

    def _reset(self, seed: int | None) -> None:
        self.obs, self.info = self.env.reset(seed=seed)
        self.sides["engine"].ret, self.sides["engine"].reward = 0.0, 0.0
        self.sides["engine"].episode += 1
        self.resync()

    def resync(self) -> None:
        """Restart the dream from the engine's current frame."""
        if self.dream is None:
            return
        self.dream_obs, _ = self.dream.reset(seed=self.seed, options={"frames": self.obs})
        self.sides["dream"].ret, self.sides["dream"].reward = 0.0, (0.0 if self.has_reward else None)
        self.sides["dream"].episode += 1

    def new_episode(self) -> None:
        self.seed += 1
        self._reset(self.seed)

    def action(self, keys: list[str], buttons: list[int], mouse: tuple[float, float], hotbar: int) -> Any:
        if self.engine == "voxel":
            return controls.voxel_action(keys, buttons, mouse, hotbar=hotbar)
        if self.engine == "physics":
            az = float(self.info.get("camera", {}).get("azimuth", 0.0))
            return controls.physics_action(keys, az, int(self.env.action_space.shape[0]))
        space = self.env.action_space
        if not hasattr(space, "n"):
            raise InputError(f"playing {self.engine} from the keyboard needs a Discrete action space, not {space}")
        return controls.discrete_action(keys, int(space.n), self.meanings)

    def step(self, keys: list[str], buttons: list[int], mouse: tuple[float, float], hotbar: int) -> None:
        a = self.action(keys, buttons, mouse, hotbar)
        t0 = time.perf_counter()
        self.obs, reward, term, trunc, self.info = self.env.step(a)
        t1 = time.perf_counter()
        self.sides["engine"].stepped(float(reward), t1 - t0)
        if self.dream is not None:
            self.dream_obs, d_reward, d_term, d_trunc, _ = self.dream.step(a)
            self.sides["dream"].stepped(float(d_reward) if self.has_reward else None, time.perf_counter() - t1)
            if d_term or d_trunc:
                self.resync()
        if term or trunc:
            self.new_episode()

    def frames(self) -> bytes:
        """The engine's frame, then the dream's (if any), raw RGB bytes of the same size."""
        parts = [np.ascontiguousarray(self.obs, dtype=np.uint8)]
        if self.dream is not None:
            parts.append(np.ascontiguousarray(self.dream_obs, dtype=np.uint8))
        return b"".join(p.tobytes() for p in parts)

    def stats(self) -> dict[str, Any]:
        return {k: v.as_dict() for k, v in self.sides.items() if k == "engine" or self.dream is not None}

    def close(self) -> None:
        for thing in (self.env, self.dream):
            if thing is not None:
                with contextlib.suppress(Exception):  # best effort: the session is gone either way
                    thing.close()
        self.env = self.dream = None
        from renderers import release_context

        release_context()  # this thread's GL context (the engine's renderer is closed)

    def shutdown(self) -> None:
        """Close the engine and model on their thread, then stop the thread."""
        self.pool.submit(self.close).result(timeout=30)
        self.pool.shutdown(wait=True)
