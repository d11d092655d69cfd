"""Record one episode: drive an env with a policy and turn what happened into a store `Episode`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datagen.captions import caption_game, caption_physics, caption_voxel
from datagen.games import GameSource, PPODataPolicy, is_game
from datagen.policies import make_policy_for
from datagen.quality import segment_quality
from store import SEGMENT_QUALITY, Episode
from store.spaces import flat_size, flatten_action


@dataclass
class Job:
    """What a generate job makes; everything that changes the bytes of the dataset is in here."""

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    width: int = 64
    height: int = 64
    episodes: int = 8
    steps: int = 64
    seed: int = 0
    policy: str = "mix"
    segment_seconds: float = 2.0
    ppo_steps: int = 20000  # policy=ppo (other games): env steps of PPO in the game before recording
    ppo_epsilon: float = 0.1  # policy=ppo: share of sticky random actions mixed into the trained policy's
    ppo_state: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # its weights, once trained

    def content_key(self) -> dict[str, Any]:
        keys = ["env_id", "env_kwargs", "width", "height", "episodes", "steps", "seed", "policy", "segment_seconds"]
        if self.policy == "ppo":
            keys += ["ppo_steps", "ppo_epsilon"]
        return {k: getattr(self, k) for k in keys}


def episode_seed(job_seed: int, index: int) -> int:
    """Seed of episode `index`: independent of how episodes are spread over workers."""
    return int(np.random.SeedSequence([int(job_seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


def make_env(job: Job):
    """The env of a job: a worldsim engine (its unwrapped env), or any other gymnasium game (`datagen.games`)."""
    if is_game(job.env_id):
        return GameSource.make(job.env_id, job.env_kwargs, job.width, job.height)
    import envs

    return envs.make(job.env_id, width=job.width, height=job.height, **job.env_kwargs).unwrapped


def flat_action(env, action) -> np.ndarray:
    if isinstance(env, GameSource):
        return flatten_action(env.spec, env.action_space, action)
    if hasattr(env.action_space, "spaces"):
        from envs.voxel.actions import to_flat

        return to_flat(action)
    return np.asarray(action, dtype=np.float32).reshape(-1)


def noop_flat(env) -> np.ndarray:
    if isinstance(env, GameSource):
        return np.zeros(flat_size(env.spec), np.float32)
    if hasattr(env.action_space, "spaces"):
        from envs.voxel.actions import noop, to_flat

        return to_flat(noop())
    return np.zeros(env.action_space.shape, np.float32)


def segment_bounds(rows: int, seg_rows: int) -> np.ndarray:
    """Row ranges of segments of `seg_rows`; a last piece shorter than half a segment joins the previous one."""
    starts = list(range(0, rows, seg_rows))
    if len(starts) > 1 and rows - starts[-1] < seg_rows / 2:
        starts.pop()
    ends = starts[1:] + [rows]
    return np.array(list(zip(starts, ends)), dtype=np.int64).reshape(-1, 2)


def record_episode(env, job: Job, index: int) -> Episode:
    """Run episode `index` of `job` in `env` and caption it."""
    seed = episode_seed(job.seed, index)
    rng = np.random.default_rng(seed)
    task = getattr(env, "task", None)
    if job.policy == "ppo":
        policy = PPODataPolicy(rng, env, job)
    else:
        policy = make_policy_for(job.policy, rng, env, getattr(task, "name", ""))
    obs, info = env.reset(seed=seed)
    frames, infos, actions, flat, rewards, term, trunc = [obs], [info], [], [], [], [], []
    for _ in range(job.steps):
        a = policy.act_on(obs, info) if hasattr(policy, "act_on") else policy.act(info)
        obs, r, te, tr, info = env.step(a)
        frames.append(obs)
        infos.append(info)
        actions.append(a)
        flat.append(flat_action(env, a))
        rewards.append(r)
        term.append(te)
        trunc.append(tr)
        if te or tr:
            break
    n = len(frames)
    flat.append(noop_flat(env))  # the final observation's row: a no-op that was never executed
    rewards.append(0.0)
    term.append(False)
    trunc.append(False)
    step_events = [infos[t + 1]["events"] for t in range(n - 1)] + [[]]
    kind = "game" if isinstance(env, GameSource) else "voxel" if job.env_id == "worldsim/Voxel-v0" else "physics"
    fps = env.metadata.get("render_fps", 20)
    bounds = segment_bounds(n, max(2, round(job.segment_seconds * fps)))
    dense, short, quality = [], [], {k: [] for k in SEGMENT_QUALITY}
    for k, (a, b) in enumerate(bounds):
        events = [e for t in range(a, b) for e in step_events[t]]
        d, s = _caption(kind, job, infos[a:b], rewards[a : min(b, n - 1)], actions[a : min(b, n - 1)], events,
                        seed * 1000 + k)
        dense.append(d)
        short.append(s)
        for key, v in segment_quality(np.stack(frames[a:b]), len(events), d).items():
            quality[key].append(v)
    all_events = [e for ev in step_events for e in ev]
    task_info = [i.get("task") or {} for i in infos]
    keys = tuple(task_info[0].get("state_keys") or ())
    task_state = np.asarray([t["state"] for t in task_info], np.float32).reshape(n, len(keys)) if keys else None
    ep_dense, ep_short = _caption(kind, job, infos, rewards[: n - 1], actions, all_events, seed * 1000 + 999)
    return Episode(
        index=index, seed=seed, frames=np.stack(frames), actions=np.stack(flat).astype(np.float32),
        rewards=np.asarray(rewards, np.float32), terminated=np.asarray(term, bool), truncated=np.asarray(trunc, bool),
        segments=bounds, segment_dense=dense, segment_short=short,
        quality={k: np.asarray(v, np.float32) for k, v in quality.items()},
        episode_dense=ep_dense, episode_short=ep_short, events=_jsonable(all_events),
        policy=type(policy).__name__, task_state=task_state, task_state_keys=keys)


def _caption(kind: str, job: Job, infos, rewards, actions, events, seed: int) -> tuple[str, str]:
    if kind == "game":
        return caption_game(job.env_id, job.env_kwargs, infos, rewards, events)
    if kind == "voxel":
        return caption_voxel(infos, actions or [{}], events, seed)
    return caption_physics(infos, np.asarray(actions), events, seed)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x
