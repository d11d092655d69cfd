"""worldsim demo: the whole pipeline on tiny defaults, on CPU: engine -> data -> VAE -> DiT -> DreamEnv -> report.

Stages (each a worldsim command, each resumable: running the demo again skips or resumes what is done):
  1. generate      a voxel `navigate` store (scripted mix of explorer, solver and random players) + a held-out store
                   made from other seeds
  2. train-vae     the video compression network (64x64 -> 16x16 latents)
  3. cache-latents the store's frames encoded once, so the DiT trains on latents
  4. train         a tiny frame-causal DiT (KV cache in DreamEnv) conditioned on actions and captions, teacher-forced
  5. train-reward  the reward and termination model DreamEnv uses
  6. dream         DreamEnv replays held-out episodes' recorded actions from their first frames, beside the engine's
                   own frames (PSNR against horizon), and under random actions (dPSNR), and a random agent plays
                   a batch of dreams (DreamVectorEnv)
Outputs under `out`: report.md, report.json, psnr_vs_horizon.png, side_by_side.mp4 (engine | model), data/,
heldout/, vae/, dit/ (with dit/reward/). 9-14 minutes on a 2-core CPU (these VMs vary 1.5x); stage sizes are in
configs/demo.yaml.

examples:
  worldsim demo
  worldsim demo out=runs/demo demo.train.steps=2000 demo.generate.episodes=64     # a longer, better run
  worldsim demo demo.dream.episodes=4 demo.dream.steps=8
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.errors import InputError
from worldsim.provenance import COMPOSITE


def _side_by_side(real: np.ndarray, dream: np.ndarray, scale: int = 4) -> np.ndarray:
    """(T, H, W, 3) engine and model frames -> (T, sH, s(2W) + gap, 3), nearest-neighbour upscaled."""
    gap = np.full((len(real), real.shape[1], 2, 3), 255, np.uint8)
    both = np.concatenate([real, gap, dream], axis=2)
    return both.repeat(scale, axis=1).repeat(scale, axis=2)


def replay(env: Any, store: str, episode: int, horizon: int, actions: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dream a held-out episode from its first frames under its recorded actions (or `actions`, rows of flat
    actions driving the dreamed steps: the random-action replay of dPSNR), with the same sampling noise.

    Returns the engine's frames and the model's frames (both (N + 1, H, W, 3), N <= horizon, the first being the
    last context frame) and that last context frame (the copy-last-frame baseline)."""
    from store import read_episode
    from store.spaces import unflatten_action

    ep = read_episode(store, episode)
    obs, _ = env.reset(seed=episode, options={"store": store, "episode": episode, "start": 0})
    u = env.unwrapped
    c = u.core.context
    n = min(horizon, len(ep["frames"]) - c)
    drive = ep["actions"][c - 1 :] if actions is None else actions
    real, made = [ep["frames"][c - 1]], [obs]
    for j in range(n):
        action = unflatten_action(u.action_spec, u.action_space, drive[j])
        obs, *_ = env.step(action)
        made.append(obs)
        real.append(ep["frames"][c + j])
    return np.stack(real), np.stack(made), ep["frames"][c - 1]


def dream_stage(cfg: Any, out: Path, heldout: Path, dit: Path) -> dict[str, Any]:
    """Replays beside the engine, PSNR against horizon, a random agent in a batch of dreams."""
    from store import episode_indices
    from worldsim.dream.core import DreamCore
    from worldsim.dream.env import DreamEnv, DreamVectorEnv
    from worldsim.eval.metrics import action_pool, psnr_uint8, random_actions

    env = DreamEnv.from_checkpoint(str(dit), steps=int(cfg.steps), max_episode_steps=None)
    h = int(cfg.horizon)
    pool = action_pool(str(heldout))
    curves, base, shuffled, videos = [], [], [], []
    for ep in episode_indices(str(heldout))[: int(cfg.episodes)]:
        real, made, last = replay(env, str(heldout), ep, h)
        other = replay(env, str(heldout), ep, h, random_actions(pool, h, np.random.default_rng([ep, 0xAC7])))[1]
        curves.append([psnr_uint8(made[i], real[i]) for i in range(1, len(real))])
        shuffled.append([psnr_uint8(other[i], real[i]) for i in range(1, len(real))])
        base.append([psnr_uint8(last, real[i]) for i in range(1, len(real))])
        videos.append(_side_by_side(real, made))
    n = min(len(c) for c in curves)
    decoded = None
    if env.core.carry:  # the same replays with the latents decoded alone, beside the rendered ones (same model)
        plain = DreamEnv(DreamCore(env.sampler, 1, steps=int(cfg.steps), render="latent"), env.source,
                         env.reward_model, max_episode_steps=None)
        rows = [replay(plain, str(heldout), ep, h) for ep in episode_indices(str(heldout))[: int(cfg.episodes)]]
        decoded = np.mean([[psnr_uint8(m[i], r[i]) for i in range(1, n + 1)] for r, m, _ in rows], axis=0)
    model = np.mean([c[:n] for c in curves], axis=0)
    copy = np.mean([b[:n] for b in base], axis=0)
    random = np.mean([c[:n] for c in shuffled], axis=0)
    _plot(model, copy, out / "psnr_vs_horizon.png")
    env.sampler.write_video(np.concatenate(videos), out / "side_by_side.mp4", source=COMPOSITE,
                            note="left: engine, right: model")

    venv = DreamVectorEnv.from_checkpoint(str(dit), num_envs=int(cfg.agents), steps=int(cfg.steps),
                                          store=str(heldout), max_episode_steps=int(cfg.agent_steps))
    venv.reset(seed=0)
    venv.action_space.seed(0)
    total, t0 = np.zeros(venv.num_envs), time.perf_counter()
    for _ in range(int(cfg.agent_steps)):
        _, reward, *_ = venv.step(venv.action_space.sample())
        total += reward
    rate = venv.num_envs * int(cfg.agent_steps) / (time.perf_counter() - t0)
    at = {k: round(float(model[k - 1]), 2) for k in (1, 8, 16, 32) if k <= n}
    return {"rollout_psnr": at, "copy_last_psnr": {k: round(float(copy[k - 1]), 2) for k in at},
            "latent_decoded_psnr": None if decoded is None else {k: round(float(decoded[k - 1]), 2) for k in at},
            "dpsnr": {k: round(float(model[k - 1] - random[k - 1]), 2) for k in at},
            "episodes": len(curves), "euler_steps": int(cfg.steps),
            "random_agent_return": round(float(total.mean()), 3),
            "dream_steps_per_s": round(rate, 1), "agents": venv.num_envs,
            "reward_model": env.reward_model is not None}


def _plot(model: np.ndarray, copy: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    x = np.arange(1, len(model) + 1)
    ax.plot(x, model, label="DreamEnv (recorded actions)")
    ax.plot(x, copy, "--", label="copy the last context frame")
    ax.set_xlabel("steps into the dream")
    ax.set_ylabel("PSNR vs engine (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _report(out: Path, d: dict[str, Any], vae_psnr: float | None, times: dict[str, float]) -> list[str]:
    plain = d.get("latent_decoded_psnr") or {}
    rows = "".join(f"| {k} | {v:.2f} | {plain[k]:.2f} | {d['copy_last_psnr'][k]:.2f} | {d['dpsnr'][k]:+.2f} |\n"
                   if plain else f"| {k} | {v:.2f} | {d['copy_last_psnr'][k]:.2f} | {d['dpsnr'][k]:+.2f} |\n"
                   for k, v in d["rollout_psnr"].items())
    head = ("| steps into the dream | PSNR vs engine (dB) | latents decoded, no pixel carry (dB) | copy last context "
            "frame (dB) | dPSNR: recorded - random actions (dB) |", "|---:|---:|---:|---:|---:|") if plain else (
        "| steps into the dream | PSNR vs engine (dB) | copy last context frame (dB) | dPSNR: recorded - random "
        "actions (dB) |", "|---:|---:|---:|---:|")
    verdict = _verdict(d)
    lines = [
        "# worldsim demo report", "",
        f"- VAE held-out reconstruction PSNR: {vae_psnr:.2f} dB" if vae_psnr is not None else "- VAE: no PSNR",
        f"- DreamEnv replayed {d['episodes']} held-out episodes under their recorded actions "
        f"({d['euler_steps']} Euler step(s) per frame):", "",
        *head, rows, f"- where it stands: {verdict}",
        f"- a random agent in {d['agents']} dreams at once: {d['dream_steps_per_s']} steps/s, mean return "
        f"{d['random_agent_return']} ({'reward model' if d['reward_model'] else 'no reward model: rewards are 0'})",
        f"- time: {sum(times.values()) / 60:.1f} minutes ({', '.join(f'{k} {v:.0f} s' for k, v in times.items())})",
        "", "![PSNR against horizon](psnr_vs_horizon.png)", "",
        "[side_by_side.mp4](side_by_side.mp4): left the engine, right the model, same starting frames and actions.", ""]
    (out / "report.md").write_text("\n".join(lines))
    return lines


def _verdict(d: dict[str, Any]) -> str:
    """One plain sentence on the dream against copying the last frame and on whether the actions steer it."""
    at, copy, dp = d["rollout_psnr"], d["copy_last_psnr"], d["dpsnr"]
    above = [k for k in at if at[k] > copy[k]]
    below = [k for k in at if at[k] <= copy[k]]
    parts = [f"above copying the last frame at {above} steps" if above else "not above copying the last frame",
             f"below it at {below}" if above and below else ""]
    h = 8 if 8 in dp else max(dp)
    parts.append(f"the actions {'steer' if dp[h] > 0.5 else 'barely steer'} it (dPSNR {dp[h]:+.2f} dB at {h} steps)")
    return "; ".join(p for p in parts if p) + "."


def main(raw) -> int:
    import torch

    from worldsim.cli.recipe import overrides, run_stages

    d = raw.demo
    for key in ("episodes", "horizon", "steps", "agents", "agent_steps"):  # checked before hours of work, not after
        if int(d.dream[key]) < 1:
            raise InputError(f"demo.dream.{key} must be >= 1, got {d.dream[key]}")
    out = Path(str(raw.out))
    data, heldout, vae, lat, dit = out / "data", out / "heldout", out / "vae", out / "latents", out / "dit"
    stages = [
        ("generate", "generate", [*overrides(d.generate), f"out={data}"]),
        ("heldout", "generate", [*overrides(d.heldout), f"out={heldout}"]),
        ("train_vae", "train-vae", [*overrides(d.train_vae), f"store={data}", f"val_store={heldout}", f"out={vae}"]),
        ("cache_latents", "cache-latents", [f"store={data}", f"vae={vae}", f"out={lat}"]),
        ("train", "train", [*overrides(d.train), *overrides(d.model, "model."), f"store={lat}", f"vae={vae}",
                            f"out={dit}", "val_episodes=0"]),
        ("train_reward", "train-reward", [*overrides(d.train_reward), f"ckpt={dit}", f"store={data}",
                                          f"val_store={heldout}"]),
    ]
    times = run_stages("demo", stages, extra=1)
    print(f"== demo {len(stages) + 1}/{len(stages) + 1} dream: DreamEnv beside the engine, a random agent", flush=True)
    t = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", UserWarning)
        result = dream_stage(d.dream, out, heldout, dit)
    times["dream"] = round(time.perf_counter() - t, 1)
    vae_psnr = _vae_psnr(vae)
    (out / "report.json").write_text(json.dumps({**result, "vae_heldout_psnr": vae_psnr, "seconds": times},
                                                indent=1))
    print("\n".join(_report(out, result, vae_psnr, times)))
    print(f"outputs: {out.resolve()}/ (report.md, side_by_side.mp4, psnr_vs_horizon.png, report.json, data/, "
          f"heldout/, vae/, dit/)")
    return 0


def _vae_psnr(vae_run: Path) -> float | None:
    from worldsim.model import checkpoint as C

    return C.load_meta(C.resolve(vae_run)).get("val_psnr")
