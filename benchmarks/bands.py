"""Bands and stripes in dreamed frames: is the banding the eye sees a pattern the model makes, or what the engine's
scene looks like when blurred? (docs/world_model.md "Bands and stripes")

    python benchmarks/bands.py --checkpoint runs/recipe/dit --store runs/recipe/heldout --episodes 8 --horizon 40

Each chosen held-out episode (evenly spaced, `worldsim eval`'s pick) is rolled out once from its real context under
its recorded actions, rendered both ways from the one run (pixel carry, DreamEnv's and eval's default, and the
latents decoded alone). Per range of horizons, on the luma of the engine's frames, the two renders, and the engine's
frames blurred by a gaussian of `--blur` pixels (a reference: the same scenes with their detail gone, no pattern):
  rows     horizontal banding: the mean squared residual of each frame's row profile (the mean of every row) after a
           sigma-3 smoothing (what is left of horizontal edges and lines once the layout, sky over ground, is gone)
  cols     the same for the column profile (vertical edges and lines)
  detail   `worldsim.eval.metrics.detail`, the fine detail (mean squared neighbouring-pixel difference)
  rows/detail  how much of the frame's detail is horizontal banding
and over the range's frames `worldsim.eval.metrics.stripes`: the strongest periodic peak of the row and column
profiles' spectra (1-4 for scenes; a stripe pattern of any period stands far above) and its period.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a world model (run directory or checkpoint)")
    ap.add_argument("--store", required=True, help="a held-out frame store of its game")
    ap.add_argument("--episodes", type=int, default=8, help="episodes, evenly spaced (default 8)")
    ap.add_argument("--horizon", type=int, default=40, help="dreamed steps per episode (default 40)")
    ap.add_argument("--ranges", type=int, nargs="+", default=[1, 5, 13, 25],
                    help="first horizon of each range of the table (default 1 5 13 25)")
    ap.add_argument("--blur", type=float, default=2.0, help="the engine reference's gaussian, pixels (default 2)")
    ap.add_argument("--steps", type=int, default=1, help="Euler steps per frame (default 1, the recipe's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.episodes < 1 or args.horizon < 1 or args.steps < 1 or args.blur <= 0 or min(args.ranges) < 1:
        ap.error("--episodes, --horizon, --steps, --blur and --ranges must be positive")

    import torch

    from store import read_episode
    from worldsim.eval.metrics import check_store, detail, luma, pick_episodes, profile_residual, stripes
    from worldsim.model.frames import gaussian_blur
    from worldsim.model.sampler import WorldSampler

    t0 = time.perf_counter()
    s = WorldSampler.load(args.checkpoint)
    if not s.can_carry:
        ap.error(f"{args.checkpoint} cannot render with pixel carry: there is only one render to look at")
    c = s.frames - s.k
    episodes = pick_episodes(check_store(s, args.store)["episodes"], args.episodes)
    kinds = {"engine": [], "carry": [], "latent": []}
    steps = []
    for j, (index, length) in enumerate(episodes):
        h = min(args.horizon, length - c)
        if h < 1:
            continue
        ep = read_episode(args.store, index)
        frames, acts = ep["frames"][: c + h], ep["actions"][: c + h - 1]
        made = s.rollout_renders(frames[:c], acts, ("carry", "latent"), steps=args.steps, seed=args.seed + 1000 * j)
        kinds["engine"].append(frames[c:])
        kinds["carry"].append(made["carry"][c:])
        kinds["latent"].append(made["latent"][c:])
        steps.append(np.arange(1, h + 1))
    if not steps:
        ap.error(f"no episode of {args.store} is longer than the model's context ({c} frames)")
    got = {k: np.concatenate(v) for k, v in kinds.items()}
    got[f"engine blurred (sigma {args.blur:g})"] = gaussian_blur(got["engine"], args.blur)
    hz = np.concatenate(steps)
    print(f"# bands: {args.checkpoint} on {len(steps)} episodes of {args.store}, up to {args.horizon} dreamed steps, "
          f"{args.steps} Euler step(s); {platform.node()}, torch {torch.__version__}, "
          f"{time.perf_counter() - t0:.0f} s")
    print("| horizons | frames | " + " | ".join(got) + " |")
    print("|---" * (2 + len(got)) + "|")
    bounds = sorted(set(args.ranges))
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] - 1 if i + 1 < len(bounds) else int(hz.max())
        keep = (hz >= lo) & (hz <= hi)
        if not keep.any():
            continue
        cells = []
        for frames in got.values():
            y = luma(frames[keep])
            rows = float((profile_residual(y, 2) ** 2).mean())  # what horizontal edges and lines leave
            cols = float((profile_residual(y, 1) ** 2).mean())
            det = float(detail(frames[keep]).mean())
            st = stripes(frames[keep])  # None for frames under 16 pixels
            pattern = "-" if st is None else (f"{st['rows']['peak']:.1f} / {st['cols']['peak']:.1f} "
                                              f"({st['rows']['period']:.1f} / {st['cols']['period']:.1f} px)")
            share = rows / max(det, 1e-9)
            cells.append(f"rows {rows:.1f}, cols {cols:.1f}, detail {det:.0f}, rows/detail {share:.2f}; "
                         f"stripes {pattern}")
        print(f"| {lo}-{hi} | {int(keep.sum())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
