"""worldsim demo: the main job on tiny defaults.

Today it drives the voxel engine with the `explorer` policy for `steps` steps and writes, under `out`:
  voxel.mp4            the first-person video
  contact_sheet.png    eight frames at a glance
  events.jsonl         the engine's event log (one JSON object per event)
and prints the engine speed and an event summary. Later stages (dataset, world model, dream env) extend it.

examples:
  worldsim demo
  worldsim demo steps=600 width=160 height=90 seed=3 env.kwargs.task=collect_wood
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worldsim.cli import build
from worldsim.commands.common import EnvConfig, make_env


@dataclass
class DemoConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    out: str = "outputs/demo"
    steps: int = 300
    width: int = 128
    height: int = 96
    seed: int = 0
    fps: int = 20


def _contact_sheet(frames: list[np.ndarray], n: int = 8) -> np.ndarray:
    picks = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, min(n, len(frames)))]
    return np.concatenate(picks, axis=1)


def main(raw) -> int:
    import imageio.v2 as imageio
    from tqdm import tqdm

    from datagen.policies import ExplorerPolicy

    cfg = build(DemoConfig, raw, "demo config")
    cfg.env = build(EnvConfig, raw.env, "env config")
    if cfg.steps <= 0:
        raise ValueError(f"steps must be positive, got {cfg.steps}")
    if cfg.env.id != "worldsim/Voxel-v0":
        raise ValueError(f"the demo drives the voxel engine today (env=voxel), got env id {cfg.env.id!r}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(cfg.env, width=cfg.width, height=cfg.height)
    policy = ExplorerPolicy(np.random.default_rng(cfg.seed))
    obs, info = env.reset(seed=cfg.seed)
    frames, events, total_reward = [obs], [], 0.0
    start = time.perf_counter()
    for _ in tqdm(range(cfg.steps), desc="voxel engine", unit="step"):
        obs, reward, terminated, truncated, info = env.step(policy.act(info))
        frames.append(obs)
        events += info["events"]
        total_reward += reward
        if terminated or truncated:
            obs, info = env.reset()
    rate = cfg.steps / (time.perf_counter() - start)
    env.close()

    imageio.mimwrite(out / "voxel.mp4", frames, fps=cfg.fps, macro_block_size=1)
    imageio.imwrite(out / "contact_sheet.png", _contact_sheet(frames))
    with open(out / "events.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    counts = Counter(e["type"] for e in events)
    print(f"{cfg.steps} steps at {cfg.width}x{cfg.height}: {rate:.0f} steps/s (policy and video capture included)")
    print(f"biome at the end: {info['biome']}, time of day {info['time_of_day']:.1f} h, reward {total_reward:.2f}")
    print("events: " + (", ".join(f"{k} x{v}" for k, v in counts.most_common()) or "none"))
    print(f"outputs: {out.resolve()}/ (voxel.mp4, contact_sheet.png, events.jsonl)")
    return 0
