"""Engine throughput: steps per second with random actions, worldsim engines beside Crafter in one run.

    python benchmarks/engine_speed.py                 # all rows, 2000 steps each
    python benchmarks/engine_speed.py --steps 500 --only voxel

Random actions follow the usual protocol: a fresh `action_space.sample()` each step, episodes reset when they
end, one process. Crafter (pip extra `bench`) is the reference 2-D benchmark; it is skipped if not installed.
Prints a markdown table (paste it into docs/benchmarks.md) with ratios to Crafter at 64x64.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _time_env(env_id: str, steps: int, seed: int, warmup: int = 50, **kwargs) -> float:
    """Steps per second of a worldsim env under random actions (after `warmup` steps: shaders, first chunks)."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the engines)

    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(warmup):
        env.step(env.action_space.sample())
    t = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - t)
    env.close()
    return rate


def _voxel(width: int, height: int, steps: int, seed: int, view_distance: int | None = None) -> float:
    return _time_env("worldsim/Voxel-v0", steps, seed, width=width, height=height, task="explore",
                     view_distance=view_distance)


def _physics(width: int, height: int, steps: int, seed: int, renderer: str = "moderngl") -> float:
    return _time_env("worldsim/Physics-v0", steps, seed, warmup=20, width=width, height=height, task="observe",
                     renderer=renderer)


def _crafter(width: int, height: int, steps: int, seed: int) -> float | None:
    try:
        import crafter
    except ImportError:
        return None
    env = crafter.Env(size=(width, height), seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    for _ in range(steps):
        _, _, done, _ = env.step(int(rng.integers(env.action_space.n)))
        if done:
            env.reset()
    return steps / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["voxel", "physics", "crafter"], help="run one engine (and Crafter)")
    args = parser.parse_args()

    rows: list[tuple[str, str, float | None]] = []
    rows.append(("Crafter (reference)", "64x64", _crafter(64, 64, args.steps, args.seed)))
    if args.only in (None, "voxel"):
        for w, h, vd in ((64, 64, None), (64, 64, 3), (128, 128, None), (160, 90, None), (256, 144, None)):
            label = "default view" if vd is None else f"view_distance={vd}"
            rows.append((f"worldsim/Voxel-v0 ({label})", f"{w}x{h}", _voxel(w, h, args.steps, args.seed, vd)))
    if args.only in (None, "physics"):
        for w, h in ((64, 64), (128, 128)):
            rate = _physics(w, h, args.steps, args.seed)
            rows.append(("worldsim/Physics-v0 (240 Hz physics, 15 fps)", f"{w}x{h}", rate))
        rows.append(("worldsim/Physics-v0 (renderer=tiny)", "64x64",
                     _physics(64, 64, max(args.steps // 4, 50), args.seed, "tiny")))
    ref = rows[0][2]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'unset')}, {args.steps} steps per row")
    print("| engine | size | steps/s | x Crafter 64x64 |")
    print("|---|---|---|---|")
    for name, size, rate in rows:
        ratio = f"{rate / ref:.2f}" if ref and rate else "-"
        print(f"| {name} | {size} | {rate:.0f} |" if rate else f"| {name} | {size} | not installed |", ratio, "|")


if __name__ == "__main__":
    main()
