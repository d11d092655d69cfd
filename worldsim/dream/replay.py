"""Dreams along recorded actions: the world model's own latents, for training what reads them in a dream.

    runs = dream_runs("runs/nav/navgoal", ["data/nav_lat"], count=1024, horizon=16, seed=0)
    runs[0]["latents"]      # (F, C, h, w) float16: the context's encoded frames, then the dreamed ones

Each run starts at a drawn place of a drawn episode of the stores (a latent store's frames store is read), resets a
`DreamCore` row on the `context` frames there (as DreamEnv's reset from a store does) and steps the episode's own
next `horizon` actions (fewer where the episode ends). A world model with goal maps is told where the goal is at
each step from the store's recorded task state (the engine's: what a good goal estimate gives it). A run keeps what
the episode recorded along those frames: actions (stored-aligned: actions[t] leads from frame t to t + 1),
rewards, terminated, and the task state where the store has one. So a model trained on them learns what the engine
paid for what the dream shows (`worldsim train-reward dreams=N`: the reward model reads dreamed latents in RL, and
the world model shows less motion than the engine does: docs/world_model.md, "Dreamed latents for the reward
model"). Same checkpoint, stores, count, horizon and seed: the same runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldsim.dream.core import DreamCore
from worldsim.dream.env import GOAL_KEYS, ContextSource
from worldsim.errors import InputError


def _episodes(url: str) -> dict[int, tuple[int, str]]:
    """Frames and recording policy of each episode of a store, by its episode index (`meta/episode_ends`, the
    `episode_policy` texts), without reading frames."""
    from store import buckets, open_store, read_texts

    root, out = open_store(url), {}
    for name in buckets(root):
        b = root[name]
        ends = b["meta/episode_ends"][...].astype(np.int64)
        out.update(zip(b["meta/episode_index"][...].tolist(),
                       zip(np.diff(ends, prepend=0).tolist(), read_texts(b, "episode_policy"))))
    return out


def pick_starts(lengths: list[int], count: int, need: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """`count` (episode position, start) pairs, episodes drawn in proportion to the starts they offer (uniform over
    every place with `need` frames from it), of episodes of lengths `lengths`; refuses when none is long enough."""
    room = np.maximum(np.asarray(lengths, np.int64) - need + 1, 0)
    if not room.any():
        raise InputError(f"no episode of the stores has the {need} frames a dream needs (context and 2 steps); "
                         f"longest: {max(lengths, default=0)}")
    eps = rng.choice(len(lengths), size=count, p=room / room.sum())
    return [(int(e), int(rng.integers(room[e]))) for e in eps]


@torch.no_grad()
def dream_runs(checkpoint: str, stores: list[str], count: int, horizon: int, seed: int = 0, rows: int = 32,
               precision: str = "bf16", desc: str = "dream", vae_digest: str | None = None,
               skip_policies: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """`count` dreams of up to `horizon` steps along recorded actions of the stores' episodes (module docstring).
    Each: latents (F, C, h, w) float16 (the context's F - n encoded frames, then n dreamed), and the episode's
    actions (F - 1, A), rewards (F - 1,), terminated (F - 1,) between them, task_state (F, K) and
    task_state_keys where the store records one, and where it came from (store, episode, start). `vae_digest`:
    the VAE whose latents the dreams must be (refused in one line when the checkpoint's is another).
    `skip_policies`: episodes recorded by these policies are never dreamed along (as train-reward leaves them out
    of its recorded transitions: a privileged solver's actions say where the goal is)."""
    from store import read_episode
    from worldsim.model.sampler import WorldSampler

    if count < 1 or horizon < 1 or rows < 1:
        raise InputError(f"dreams, dream_horizon and rows must be >= 1, got {count}, {horizon}, {rows}")
    sampler = WorldSampler.load(checkpoint)
    ours = sampler.meta.get("vae", {}).get("digest")
    if vae_digest is not None and ours != vae_digest:
        raise InputError(f"dream_ckpt={checkpoint} dreams the latents of another VAE ({str(ours)[:12]}...) than the "
                         f"reward model reads ({vae_digest[:12]}...): pick a world model fine-tuned from ckpt")
    core = DreamCore(sampler, min(rows, count), precision=precision, render="latent")
    source = ContextSource(sampler, None, core.context)
    pairs = [p for s in stores for p in source.episodes(s)]  # (frames store, episode index)
    per_store = {url: _episodes(url) for url in {u for u, _ in pairs}}
    pairs = [(url, i) for url, i in pairs if per_store[url][i][1] not in skip_policies]
    if not pairs:
        raise InputError(f"every episode of {stores} was recorded by {list(skip_policies)}: nothing to dream along")
    lengths = [per_store[url][i][0] for url, i in pairs]
    rng = np.random.default_rng(seed)
    picks = pick_starts(lengths, count, core.context + 2, rng)  # at least two dreamed steps
    seeds = rng.integers(2**62, size=count)
    order = sorted(range(count), key=lambda j: picks[j])  # an episode's dreams together: each read once
    runs: list[dict[str, Any]] = [{} for _ in range(count)]
    bar = tqdm(total=count, desc=desc, unit="dream", delay=1.0)
    for first in range(0, count, core.rows):
        batch = order[first : first + core.rows]
        eps = {e: read_episode(*pairs[e]) for e in {picks[j][0] for j in batch}}  # each episode read once
        _dream_batch(core, [(pairs[picks[j][0]], eps[picks[j][0]], picks[j][1], int(seeds[j])) for j in batch],
                     horizon, [runs[j] for j in batch])
        bar.update(len(batch))
    bar.close()
    return runs


def _dream_batch(core: DreamCore, starts: list[tuple[tuple[str, int], dict[str, Any], int, int]], horizon: int,
                 out: list[dict[str, Any]]) -> None:
    """Rows 0..len(starts) - 1 of `core` reset at each (pair, episode, start, seed) and stepped along the
    episode's actions; fills each dict of `out` (`dream_runs`)."""
    c = core.context
    rows = list(range(len(starts)))
    frames, actions, goals, steps = [], [], [], []
    for (_, ep, s, _) in starts:
        n = len(ep["frames"])
        steps.append(min(horizon, n - s - c))
        frames.append(ep["frames"][s : s + c])
        actions.append(ep["actions"][s : s + c])
        keys = list(ep.get("task_state_keys") or [])
        has_goal = bool(core.goal.shape[2]) and keys[:2] == list(GOAL_KEYS)
        goals.append(np.asarray(ep["task_state"][s : s + c, :2], np.float32) if has_goal else None)
    context = core.reset_rows(rows, frames, actions, [ep["episode_short"] for _, ep, _, _ in starts],
                              [seed for *_, seed in starts], goals)
    dreamed: list[list[torch.Tensor]] = [[] for _ in rows]
    width = core.model.spec.action_dim
    for k in range(max(steps)):
        acts = np.zeros((core.rows, width), np.float32)
        goal = np.zeros((core.rows, 2), np.float32)
        known = np.zeros(core.rows, bool)
        for r, (_, ep, s, _) in enumerate(starts):
            t = min(s + c - 1 + k, len(ep["frames"]) - 2)  # rows already ended step on under their last action
            acts[r] = ep["actions"][t]
            if goals[r] is not None:
                goal[r], known[r] = ep["task_state"][t, :2], True
        z = core.step(torch.from_numpy(acts), goal if known.any() else None, known)
        for r in rows:
            if k < steps[r]:
                dreamed[r].append(z[r].to(torch.float16).cpu())
    for r, ((url, index), ep, s, _) in enumerate(starts):
        end = s + c + steps[r]  # frames s .. end - 1: the context's, then the dreamed ones
        run = {"latents": torch.cat([context[r].to(torch.float16).cpu(), torch.stack(dreamed[r])]).numpy(),
               "actions": np.asarray(ep["actions"][s : end - 1], np.float32),
               "rewards": np.asarray(ep["rewards"][s : end - 1], np.float32),
               "terminated": np.asarray(ep["terminated"][s : end - 1], bool),
               "store": url, "episode": int(index), "start": int(s)}
        if "task_state" in ep:
            run.update(task_state=np.asarray(ep["task_state"][s:end], np.float32),
                       task_state_keys=list(ep["task_state_keys"]))
        out[r].update(run)
