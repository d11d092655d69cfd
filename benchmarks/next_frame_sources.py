"""Where a delta model's next frame comes from: its teacher-forced next-frame PSNR beside what its parts give alone.

    python benchmarks/next_frame_sources.py --checkpoint runs/recipe/dit --store runs/recipe/heldout
    python benchmarks/next_frame_sources.py --checkpoint runs/recipe/dit --store runs/recipe/heldout --windows 64

For `--windows` evenly spaced held-out windows (worldsim eval's next-frame protocol: the real context, the real
action, one new frame at 1 Euler step, the same seeds), the mean PSNR of:
  copy-last          the last context frame
  latents decoded    the model's new latents through the VAE (render=latent)
  base decoded       its base alone (the previous frame moved by its warp, or the memory's recall), decoded: the
                     model with its output zeroed
  warp on latents    the previous frame's latents moved by the model's warp, decoded
  warp on pixels     the previous frame's pixels moved by the same warp (no learning beyond the warp)
  rendered           what rollouts and DreamEnv show: pixel carry (worldsim/model/render.py)
The gap between "warp on latents" and "warp on pixels" is what the VAE round trip costs a moved frame; between
"latents decoded" and "base decoded", what the DiT adds to its base (docs/world_model.md, "Pixel carry").
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a worldsim train run (a delta model: flow.prediction=delta)")
    ap.add_argument("--store", required=True, help="a held-out frame store of the model's game")
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from worldsim.eval.metrics import psnr_uint8
    from worldsim.model.frames import to_model, to_uint8
    from worldsim.model.sampler import WorldSampler
    from worldsim.train.data import StoreSet

    s = WorldSampler.load(args.checkpoint)
    if not s.can_carry:
        raise SystemExit(f"{args.checkpoint}: not a one-frame-at-a-time delta model with a per-frame VAE")
    windows = StoreSet([args.store], s.frames, "all")
    rows: dict[str, list[float]] = {k: [] for k in ("copy-last", "latents decoded", "base decoded", "warp on latents",
                                                    "warp on pixels", "rendered")}
    with torch.no_grad():
        for j, i in enumerate(windows.spread(args.windows)):
            w = windows.read(i)
            frames, actions = w["frames"], w["actions"]
            ctx, target = frames[:-1], frames[-1:]
            acts = s._actions(actions[: len(frames) - 1], len(frames))
            trace: list = []
            z = s.continue_latents(s.encode(ctx), 1, "", acts, steps=1, seed=args.seed + j, trace=trace)
            src = trace[0]
            prev_z = z[:, -2]
            grid = F.affine_grid(src.step[:, :2, :], [1, *prev_z.shape[1:]], align_corners=False)
            warped_z = F.grid_sample(prev_z.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
            prev_px = to_model(ctx[-1])[None].to(s.device)
            grid_px = F.affine_grid(src.step[:, :2, :], list(prev_px.shape), align_corners=False)
            warped_px = F.grid_sample(prev_px, grid_px, mode="bilinear", padding_mode="border", align_corners=False)
            rendered = s.rollout(ctx, actions[: len(frames) - 1], steps=1, seed=args.seed + j, render="carry")[-1:]
            guesses = {"copy-last": ctx[-1:], "latents decoded": s.decode(z[:, -1:]),
                       "base decoded": s.decode(src.base[:, None]), "warp on latents": s.decode(warped_z[:, None]),
                       "warp on pixels": to_uint8(warped_px), "rendered": rendered}
            for name, guess in guesses.items():
                rows[name].append(psnr_uint8(guess, target))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"{args.checkpoint} on {args.store}: {len(rows['rendered'])} held-out windows, next frame at 1 Euler step\n")
    print("| next frame from | PSNR (dB) | vs copy-last |")
    print("|---|---:|---:|")
    copy = float(np.mean(rows["copy-last"]))
    for name, vals in rows.items():
        print(f"| {name} | {np.mean(vals):.2f} | {np.mean(vals) - copy:+.2f} |")


if __name__ == "__main__":
    main()
