"""Where a dream step's time goes, and what a few speed levers buy, on a trained checkpoint (DreamVectorEnv, one
Euler step or the checkpoint's default, the decoder DreamEnv picks).

    python benchmarks/dream_levers.py --checkpoint runs/voxel64/dit --batch 32

Prints the time of DreamCore's parts per batch step (timers around them), then dream steps per second of the
baseline, the DiT's weights cast to bf16 once, `torch.compile` of the DiT's forward (after its warm-up), and each
`--contexts` value. One measurement each, on one machine: compare within a run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def _env(checkpoint: str, batch: int, context: int | None):
    from worldsim.dream.env import DreamVectorEnv

    env = DreamVectorEnv.from_checkpoint(checkpoint, num_envs=batch, max_episode_steps=None, context=context)
    env.reset(seed=0)
    env.action_space.seed(0)
    return env, [env.action_space.sample() for _ in range(8)]


def breakdown(checkpoint: str, batch: int, steps: int, context: int | None) -> dict[str, float]:
    """Milliseconds per batch step in DreamCore's parts (and the whole step)."""
    env, acts = _env(checkpoint, batch, context)
    for a in acts[:3]:
        env.step(a)
    core, spent = env.core, {}

    def timed(name):
        fn = getattr(core, name)

        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
            return out
        setattr(core, name, wrapper)

    for name in ("_recall", "_step_cached", "_remember", "decode"):
        timed(name)
    t0 = time.perf_counter()
    for i in range(steps):
        env.step(acts[i % len(acts)])
    spent["env.step"] = time.perf_counter() - t0
    return {k: 1000 * v / steps for k, v in spent.items()}


def rate(checkpoint: str, batch: int, steps: int, lever: str, context: int | None = None) -> tuple[float, float]:
    """(dream steps/s, warm-up seconds) with one lever: base, bf16-weights or compile."""
    env, acts = _env(checkpoint, batch, context)
    if lever == "bf16-weights":
        env.core.model.dit.to(torch.bfloat16)
    elif lever == "compile":
        env.core.model.dit.forward = torch.compile(env.core.model.dit.forward, dynamic=False)
    t = time.perf_counter()
    for a in acts[:3]:
        env.step(a)
    warm = time.perf_counter() - t
    t0 = time.perf_counter()
    for i in range(steps):
        env.step(acts[i % len(acts)])
    return batch * steps / (time.perf_counter() - t0), warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12, help="timed batch steps per measurement")
    ap.add_argument("--context", type=int, help="the baseline's context (default: DreamEnv's)")
    ap.add_argument("--contexts", type=int, nargs="*", default=[4], help="other contexts to time")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="no reward model")
    parts = breakdown(args.checkpoint, args.batch, args.steps, args.context)
    print(f"batch {args.batch}, ms per batch step: " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()))
    print("| lever | dream steps/s | warm-up (s) |")
    print("|---|---:|---:|")
    for lever in ("base", "bf16-weights", "compile"):
        sps, warm = rate(args.checkpoint, args.batch, args.steps, lever, args.context)
        print(f"| {lever} | {sps:.1f} | {warm:.1f} |")
    for ctx in args.contexts:
        sps, warm = rate(args.checkpoint, args.batch, args.steps, "base", ctx)
        print(f"| context {ctx} | {sps:.1f} | {warm:.1f} |")


if __name__ == "__main__":
    main()
