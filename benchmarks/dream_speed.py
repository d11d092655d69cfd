"""DreamVectorEnv steps per second beside the real voxel engine's, in the same run; with --store, the quality of
each configuration on held-out episodes beside the same model sampled with 8 Euler steps and the full decoder.

    python benchmarks/dream_speed.py                               # builds an untrained tiny causal model at 64x64
    python benchmarks/dream_speed.py --checkpoint runs/dit --batches 1 32 --steps 1 2 4
    python benchmarks/dream_speed.py --checkpoint runs/dit --decoders full light --store data/heldout
    python benchmarks/dream_speed.py --checkpoint runs/dit --students runs/dit/student --store data/heldout
    python benchmarks/dream_speed.py --device cuda --batches 1 32 256

A dream step = the action in, `steps` Euler steps of the DiT over the new frame (with the KV cache of the context
frames when the model is frame-causal, else over the whole window), the VAE decode of the frame (with pixel carry,
--renders carry, DreamEnv's default for a delta model: its composition with the previous and recalled frames'
pixels), and the reward model when there is one. Speed does not depend on the weights, so without --checkpoint the
script makes a tiny store, trains a VAE and a tiny-preset DiT (model.attention=causal) for one step each, and times
that. The engine is `worldsim/Voxel-v0` at the same size under random actions. Prints a markdown table (steps/s are
env steps: batch x batch steps per second). Quality (--store): next-frame PSNR on --windows held-out windows and
rollout PSNR and dPSNR at horizon 16 on --episodes held-out episodes (worldsim eval's definitions), for each (Euler
steps, decoder), beside the reference of 8 Euler steps with the full decoder; the targets are within 0.5 dB (next
frame) and 1 dB (horizon 16).
--students adds one-step students of the checkpoint (`worldsim distill`), timed and scored the same way, against the
same reference (the teacher with 8 Euler steps and the full decoder).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_checkpoint(root: Path, size: int, attention: str) -> Path:
    from datagen.job import run
    from datagen.rollout import Job
    from worldsim.cli import main

    store = root / "store"
    run(Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": "explore"}, width=size, height=size, episodes=2,
            steps=20, seed=0), str(store), workers=1)
    assert main(["train-vae", f"store={store}", "steps=1", f"out={root / 'vae'}", "batch_size=2", "device=cpu",
                 "vae.latent_channels=16", "val_windows=2"]) == 0
    assert main(["train", f"store={store}", f"vae={root / 'vae'}", f"out={root / 'dit'}", "steps=1", "frames=8",
                 "batch_size=1", "device=cpu", "model=tiny", f"model.attention={attention}"]) == 0
    return root / "dit"


def time_dream(checkpoint: str, batch: int, steps: int, device: str, seconds: float, decoder: str = "full",
               context: int | None = None, render: str = "carry") -> float:
    from worldsim.dream.env import DreamVectorEnv

    # student="none": time exactly this checkpoint (DreamEnv would dream with its distilled student when it has one)
    env = DreamVectorEnv.from_checkpoint(checkpoint, num_envs=batch, steps=steps, device=device,
                                         max_episode_steps=None, decoder=decoder, context=context, student="none",
                                         render=render)
    env.reset(seed=0)
    env.action_space.seed(0)
    acts = [env.action_space.sample() for _ in range(8)]
    for a in acts[:3]:  # warm-up
        env.step(a)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        env.step(acts[n % len(acts)])
        n += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * n / (time.perf_counter() - t0)


def quality(checkpoint: str, store: str, steps: int, decoder: str, windows: int, episodes: int,
            context: int | None = None, revisit: str | None = None) -> dict:
    """Next-frame PSNR and rollout PSNR / dPSNR at horizon 16 of one (steps, decoder, context) on a held-out store;
    a shorter context is a shorter sampling window (`context` + 1 latent frames), as DreamEnv's `context=`."""
    from worldsim.eval.metrics import (
        check_store,
        horizon_metrics,
        next_frame_metrics,
        pick_episodes,
        revisit_metrics,
        rollouts,
    )
    from worldsim.model.sampler import WorldSampler
    from worldsim.train.data import StoreSet

    s = WorldSampler.load(checkpoint, decoder=decoder)
    if context is not None:
        s.window = min(s.window, context + 1)
    with torch.no_grad():
        nf = next_frame_metrics(s, StoreSet([store], s.frames, "all"), count=windows, steps=steps)
        info = check_store(s, store)
        rolls = rollouts(s, store, pick_episodes(info["episodes"], episodes), [16], steps, seed=0)
        back = revisit_metrics(s, revisit, steps, seed=0) if revisit else {}
    h16 = horizon_metrics(rolls, [16])["horizons"]["16"] or {}
    return {"next": nf["next_frame_psnr"], "copy": nf["copy_last_frame_psnr"], "r16": h16.get("model_psnr"),
            "d16": h16.get("dpsnr"), "return": back.get("return_model_psnr"),
            "return20": back.get("return_at_least_20db")}


def time_engine(size: int, seconds: float) -> float:
    import gymnasium as gym

    import envs  # noqa: F401  (registers worldsim/Voxel-v0)

    env = gym.make("worldsim/Voxel-v0", width=size, height=size, max_episode_steps=10**9)
    env.reset(seed=0)
    env.action_space.seed(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 10:
        env.step(env.action_space.sample())
        n += 1
    env.close()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a worldsim train run or checkpoint (default: an untrained tiny one)")
    ap.add_argument("--size", type=int, default=64, help="frame size when building the checkpoint")
    ap.add_argument("--attention", default="causal", help="attention of the built checkpoint: causal | full")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="Euler steps per frame")
    ap.add_argument("--decoders", nargs="+", default=["full"], help="full | light (worldsim distill-decoder)")
    ap.add_argument("--contexts", type=int, nargs="+", default=[None],
                    help="latent context frames to measure (default: DreamEnv's default for the checkpoint)")
    ap.add_argument("--renders", nargs="+", default=["carry"],
                    help="how dreamed frames become pixels: carry (DreamEnv's default) | latent (decode only)")
    ap.add_argument("--students", nargs="*", default=[],
                    help="one-step students of --checkpoint (worldsim distill), measured at 1 Euler step beside it")
    ap.add_argument("--store", help="a held-out store of the model's game: also measure quality")
    ap.add_argument("--revisit", help="a store of look-away-and-back episodes: also the revisit return PSNR (--store)")
    ap.add_argument("--windows", type=int, default=64, help="held-out windows for next-frame PSNR (--store)")
    ap.add_argument("--episodes", type=int, default=8, help="held-out episodes for rollouts (--store)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    args = ap.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message="no reward model")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or str(make_checkpoint(Path(tmp), args.size, args.attention))
        from worldsim.dream.core import default_context
        from worldsim.model.sampler import WorldSampler

        s = WorldSampler.load(ckpt)
        size = (s.height, s.width)
        trained, dreamed = max(s.window - 1, 1), default_context(s)
        contexts = [c or dreamed for c in args.contexts]  # None: DreamEnv's default
        attention = s.model.spec.dit.attention
        engine_a = time_engine(size[1], args.seconds)
        models = [("teacher" if args.students else "model", ckpt, args.steps)]
        models += [(f"student {i + 1} ({len(WorldSampler.load(p).model.dit.blocks)} blocks)", p, [1])
                   for i, p in enumerate(args.students)]
        rows = []
        for b in args.batches:
            for name, path, steps in models:
                for st in steps:
                    for dec in args.decoders:
                        for ctx in contexts:
                            for rnd in args.renders:
                                rows.append((name, b, st, dec, ctx, rnd,
                                             time_dream(path, b, st, args.device, args.seconds, dec, ctx, rnd)))
        engine_b = time_engine(size[1], args.seconds)
        qual = {}
        if args.store:
            todo = [(models[0][0], ckpt, 8, "full", trained)]
            todo += [(name, path, st, dec, ctx) for name, path, steps in models for st in steps
                     for dec in args.decoders for ctx in contexts]
            for name, path, st, dec, ctx in todo:
                if (name, st, dec, ctx) not in qual:
                    qual[(name, st, dec, ctx)] = quality(path, args.store, st, dec, args.windows, args.episodes, ctx,
                                                         args.revisit)
    engine = (engine_a + engine_b) / 2
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {args.device}")
    print(f"model: preset {s.model.spec.dit.preset}, attention {attention} "
          f"({'KV cache' if attention == 'causal' else 'whole window per Euler step'}), "
          f"{size[0]}x{size[1]}, trained window {s.window} latent frames, DreamEnv's default context {dreamed}")
    print(f"real engine (worldsim/Voxel-v0, random actions): {engine:.0f} steps/s "
          f"(before {engine_a:.0f}, after {engine_b:.0f})\n")
    print("| model | batch | Euler steps | decoder | context | render | dream steps/s | x real engine |")
    print("|---|---:|---:|---|---:|---|---:|---:|")
    for name, b, st, dec, ctx, rnd, sps in rows:
        print(f"| {name} | {b} | {st} | {dec} | {ctx} | {rnd} | {sps:.1f} | {sps / engine:.3f} |")
    if qual:
        ref = qual[(models[0][0], 8, "full", trained)]
        print(f"\nquality on {args.store} ({args.windows} windows, {args.episodes} episodes; copy-last next frame "
              f"{ref['copy']:.2f} dB); reference: 8 Euler steps, full decoder, context {trained}\n")
        print("| model | Euler steps | decoder | context | next-frame PSNR (vs ref) | rollout PSNR @16 (vs ref) "
              "| dPSNR @16 | revisit return PSNR (>= 20 dB) |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for (name, st, dec, ctx), q in qual.items():
            r16 = "n/a" if q["r16"] is None else f"{q['r16']:.2f} ({q['r16'] - ref['r16']:+.2f})"
            d16 = "n/a" if q["d16"] is None else f"{q['d16']:.2f}"
            back = "n/a" if q["return"] is None else f"{q['return']:.2f} ({q['return20']:.0%})"
            print(f"| {name} | {st} | {dec} | {ctx} | {q['next']:.2f} ({q['next'] - ref['next']:+.2f}) | {r16} | "
                  f"{d16} | {back} |")
    print(f"\n(numpy {np.__version__})")


if __name__ == "__main__":
    main()
