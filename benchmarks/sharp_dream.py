"""How sharp is the dream? World models side by side on held-out rollouts under the recorded actions: PSNR against
the engine and fine detail against the engine's (docs/world_model.md, "Sharper one-step frames").

    python benchmarks/sharp_dream.py --checkpoints runs/recipe/dit runs/adv_ctrl runs/adv --store runs/recipe/heldout \
        --episodes 8 --image docs/images/recipe_adv_rollout.png

Each model rolls out every chosen episode (evenly spaced, `worldsim eval`'s pick) from the same real context under
the episode's recorded actions, with the same seed, rendered as `worldsim eval` renders (the checkpoint's default,
pixel carry for the recipe's models). Per horizon h (the h-th dreamed frame), over the episodes:
  PSNR     of the dreamed frame against the engine's (dB); copy-last: the last context frame against it
  detail   the dreamed frames' fine detail over the engine frames' (`worldsim.eval.metrics.detail`: mean squared
           neighbouring-pixel difference, summed over episodes): 1 = as much edge and texture as the engine; the
           blurred mean a one-step sampler draws where it is unsure scores low
and over all dreamed frames of all episodes:
  seams    how much the model's token grid stands out (`seams`; period = the DiT's patch x the VAE's factor),
           beside the engine frames' score (their own textures and edges): a grid or stripes of that period
           score above the engine
The contact sheet (`--image`) shows the engine and every model for the first `--show` episodes, every 4th step.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", nargs="+", required=True, help="world models (run directories or checkpoints)")
    ap.add_argument("--names", nargs="+", help="a label per checkpoint (default: the run directory's name)")
    ap.add_argument("--store", required=True, help="a held-out frame store (e.g. the recipe's heldout)")
    ap.add_argument("--episodes", type=int, default=8, help="episodes, evenly spaced (default 8)")
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 8, 16, 32], help="default 1 8 16 32")
    ap.add_argument("--steps", type=int, default=1, help="Euler steps per frame (default 1, the recipe's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image", help="write a contact sheet here (PNG)")
    ap.add_argument("--show", type=int, default=2, help="episodes on the contact sheet (default 2)")
    args = ap.parse_args()
    if args.names and len(args.names) != len(args.checkpoints):
        ap.error(f"--names gives {len(args.names)} labels for {len(args.checkpoints)} checkpoints")
    if args.episodes < 1 or min(args.horizons) < 1 or args.steps < 1:
        ap.error("--episodes, --horizons and --steps must be positive")

    import torch

    from store import read_episode
    from worldsim.eval.metrics import check_store, horizon_metrics, pick_episodes
    from worldsim.model.sampler import WorldSampler

    names = args.names or [Path(c).name for c in args.checkpoints]
    first = WorldSampler.load(args.checkpoints[0])
    episodes = pick_episodes(check_store(first, args.store)["episodes"], args.episodes)
    horizon = max(args.horizons)
    print(f"# sharp_dream: {len(episodes)} episodes of {args.store}, horizons {args.horizons}, {args.steps} step(s); "
          f"{platform.node()}, {torch.get_num_threads()} threads")
    kept: dict[str, list[np.ndarray]] = {"engine": []}
    tables: dict[str, dict] = {}
    grids: dict[str, float] = {}
    for k, (name, ckpt) in enumerate(zip(names, args.checkpoints)):
        t0 = time.perf_counter()
        s = first if k == 0 else WorldSampler.load(ckpt)
        c = s.frames - s.k
        period = s.vae.cfg.spatial * s.model.spec.dit.patch
        rolls = []
        for j, (index, length) in enumerate(episodes):
            h = min(horizon, length - c)
            ep = read_episode(args.store, index)
            frames, acts = ep["frames"][: c + h], ep["actions"][: c + h - 1]
            made = s.rollout(frames[:c], acts, steps=args.steps, seed=args.seed + 1000 * j)[c:]
            rolls.append({"context": c, "length": h, "real": frames, "model": made})
        kept[name] = [r["model"] for r in rolls]
        kept["engine"] = [r["real"] for r in rolls]
        tables[name] = horizon_metrics(rolls, args.horizons)["horizons"]
        grids[name] = seams(np.concatenate(kept[name]), period)  # each model at its own token period
        if k == 0:  # the engine's frames over the same steps, at the first model's period
            grids["engine"] = seams(np.concatenate([r["real"][c:] for r in rolls]), period)
        print(f"({name}: {time.perf_counter() - t0:.0f}s)", flush=True)
    hs = args.horizons
    print("| model | " + " | ".join(f"PSNR @{h}" for h in hs) + " | " + " | ".join(f"detail @{h}" for h in hs) + " |")
    print("|---" * (1 + 2 * len(hs)) + "|")
    rows = [(name, tables[name], "model") for name in names] + [("copy-last", tables[names[0]], "copy_last")]
    for name, table, col in rows:
        psnr = [f"{table[str(h)][f'{col}_psnr']:.2f}" if table[str(h)] else "-" for h in hs]
        det = [f"{table[str(h)][f'{col}_detail'] / max(table[str(h)]['real_detail'], 1e-9):.2f}"
               if table[str(h)] else "-" for h in hs]
        print(f"| {name} | " + " | ".join(psnr) + " | " + " | ".join(det) + " |")
    print("seams (token period) over all dreamed frames: " + ", ".join(f"{name} {grids[name]:.3f}" for name in names)
          + f"; engine {grids['engine']:.3f}")
    if args.image:
        contact_sheet(args.image, names, kept, c, args.show)


def seams(frames: np.ndarray, period: int) -> float:
    """How much a pattern repeating every `period` pixels stands out in uint8 frames (N, H, W, 3) -> float >= 0.
    Along each axis, the mean absolute difference between neighbouring pixels is averaged per boundary phase (the
    boundary between pixels i and i + 1 has phase (i + 1) mod period); the score is the strongest phase over the
    mean of all phases, minus 1, the larger of the two axes. Frames whose edges fall anywhere score near 0; the
    seams of a token grid, or stripes of that period or a divisor of it, stand out at one phase."""
    f = frames.astype(np.float64)
    score = 0.0
    for axis in (2, 1):  # columns, rows
        d = np.abs(np.diff(f, axis=axis)).mean(axis=tuple(a for a in range(4) if a != axis))
        phase = np.arange(1, len(d) + 1) % period
        bins = np.array([d[phase == k].mean() for k in np.unique(phase)])
        score = max(score, float(bins.max() / max(bins.mean(), 1e-9) - 1))
    return score


def contact_sheet(path: str, names: list[str], kept: dict[str, list[np.ndarray]], context: int, show: int) -> None:
    """Engine and each model, one row each, for the first `show` episodes: the last context frame, then every 4th
    dreamed step."""
    from sheet import draw

    n = min(len(v) for v in kept[names[0]][:show])
    steps = [0, *range(4, n + 1, 4)]  # 0: the last context frame
    rows = []
    for e in range(min(show, len(kept["engine"]))):
        engine = kept["engine"][e]
        for label in ["engine", *names]:
            rows.append((label, [engine[context - 1] if k == 0 else engine[context + k - 1] if label == "engine"
                                 else kept[label][e][k - 1] for k in steps]))
    draw(path, rows, ["context" if k == 0 else f"t+{k}" for k in steps], left=0.14, dpi=80)


if __name__ == "__main__":
    main()
