"""Data generation throughput: the cost of recording into a store, worker scaling, bytes per frame, window reads.

    python benchmarks/datagen_speed.py                      # voxel 64x64, 12 episodes x 200 steps
    python benchmarks/datagen_speed.py --env physics --episodes 8 --steps 150

Rows, all in one run on the same job (same seeds, same policy):
- raw engine: the policy driving the env, nothing kept (env construction included, as in a job);
- into a store, 1 worker: `datagen.job.run` in process: rollout, captions, quality scores, zarr writes, finalize,
  digest, card. The overhead is 1 - store/raw (target: at most 15%);
- into a store, 2 workers: the same job on a spawn pool of 2 processes, worker start-up included (target >= 1.8x);
- bytes per frame on disk (all arrays and texts, compressed);
- random 16-frame windows read by `store.windows.WindowReader`, held in memory and decoded from disk for each window
  (target >= 5000 frames/s of 64x64 windows in one process).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ENVS = {"voxel": ("worldsim/Voxel-v0", {"task": "explore"}), "physics": ("worldsim/Physics-v0", {"task": "observe"})}


def raw_engine(job) -> tuple[int, float]:
    """(frames, seconds) of the job's episodes stepped with its policies, nothing recorded."""
    from datagen.policies import make_policy_for
    from datagen.rollout import episode_seed, make_env

    t = time.perf_counter()
    env = make_env(job)
    frames = 0
    for index in range(job.episodes):
        seed = episode_seed(job.seed, index)
        policy = make_policy_for(job.policy, np.random.default_rng(seed), env, getattr(env.task, "name", ""))
        _, info = env.reset(seed=seed)
        frames += 1
        for _ in range(job.steps):
            _, _, term, trunc, info = env.step(policy.act(info))
            frames += 1
            if term or trunc:
                break
    env.close()
    return frames, time.perf_counter() - t


def into_store(job, url: str, workers: int) -> tuple[int, float]:
    from datagen.job import run

    t = time.perf_counter()
    attrs = run(job, url, workers)
    return attrs["stats"]["frames"], time.perf_counter() - t


def window_reads(url: str, window: int, count: int, memory: bool) -> float:
    from store.windows import WindowReader

    # cache_chunks=1: every window whose chunk is not the last one read decodes again (a store far larger than RAM)
    reader = WindowReader(url, window, memory_limit=(2 << 30) if memory else 0, cache_chunks=1)
    idx = reader.sample(np.random.default_rng(0), count)
    t = time.perf_counter()
    n = sum(len(reader.read(int(i))["frames"]) for i in idx)
    return n / (time.perf_counter() - t)


def _burn(n: int) -> float:
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i
    return time.perf_counter() - t


def cpu_ceiling(n: int = 10_000_000) -> float:
    """How much faster 2 processes finish 2 units of pure-Python work than 1 process finishes 1 unit each, i.e. the
    2-process speed-up this machine can give at all (2.0 on two real cores; less on shared or hyper-threaded vCPUs)."""
    import multiprocessing as mp

    one = _burn(n)
    with mp.get_context("spawn").Pool(2) as pool:
        t = time.perf_counter()
        pool.map(_burn, [n, n])
        two = time.perf_counter() - t
    return 2 * one / two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(ENVS), default="voxel")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=64, help="frame width and height")
    parser.add_argument("--policy", default="explorer")
    parser.add_argument("--window", type=int, default=16)
    args = parser.parse_args()

    from datagen.rollout import Job

    env_id, kwargs = ENVS[args.env]
    job = Job(env_id=env_id, env_kwargs=kwargs, width=args.size, height=args.size, episodes=args.episodes,
              steps=args.steps, seed=0, policy=args.policy)
    tmp = Path(tempfile.mkdtemp(prefix="worldsim-bench-"))
    try:
        raw_n, raw_s = raw_engine(job)
        one_n, one_s = into_store(job, str(tmp / "one"), 1)
        two_n, two_s = into_store(job, str(tmp / "two"), 2)
        size = sum(f.stat().st_size for f in (tmp / "one").rglob("*") if f.is_file())
        mem = window_reads(str(tmp / "one"), args.window, 4000, memory=True)
        cached = window_reads(str(tmp / "one"), args.window, 1000, memory=False)
        ceiling = cpu_ceiling()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert raw_n == one_n == two_n, (raw_n, one_n, two_n)
    raw, one, two = raw_n / raw_s, one_n / one_s, two_n / two_s
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {env_id} "
          f"{args.size}x{args.size}, policy {args.policy}, {args.episodes} episodes x {args.steps} steps "
          f"({raw_n} frames)")
    print("| measure | value | ratio |")
    print("|---|---|---|")
    print(f"| raw engine + policy | {raw:.0f} frames/s | 1.00 |")
    print(f"| into a store, 1 worker | {one:.0f} frames/s | {one / raw:.2f} (overhead {1 - one / raw:.0%}) |")
    print(f"| into a store, 2 workers | {two:.0f} frames/s | {two / one:.2f}x 1 worker |")
    print(f"| this machine's 2-process ceiling (pure Python loop, 2 vs 1 process) | - | {ceiling:.2f}x |")
    print(f"| bytes per frame on disk (all arrays, texts, card) | {size / one_n:.0f} | - |")
    print(f"| random {args.window}-frame windows, in memory | {mem:.0f} frames/s | - |")
    print(f"| random {args.window}-frame windows, one-chunk cache (decoded from disk) | {cached:.0f} frames/s | - |")


if __name__ == "__main__":
    main()
