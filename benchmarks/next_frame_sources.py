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
With --variants, the composition variants pixel carry was chosen from (the gate, its tau, adding the DiT's change)
on the same windows.
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
    ap.add_argument("--variants", action="store_true", help="also score the composition variants")
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
            if args.variants:
                guesses.update(variants(s, z[:, -1], prev_px, warped_px, src))
            for name, guess in guesses.items():
                rows.setdefault(name, []).append(psnr_uint8(guess, target))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"{args.checkpoint} on {args.store}: {len(rows['rendered'])} held-out windows, next frame at 1 Euler step\n")
    print("| next frame from | PSNR (dB) | vs copy-last |")
    print("|---|---:|---:|")
    copy = float(np.mean(rows["copy-last"]))
    for name, vals in rows.items():
        print(f"| {name} | {np.mean(vals):.2f} | {np.mean(vals) - copy:+.2f} |")


def variants(s, x0: torch.Tensor, prev_px: torch.Tensor, warped_px: torch.Tensor, src) -> dict[str, np.ndarray]:
    """Ways to compose the new frame from the moved previous pixels and the decode (no recall unless named)."""
    from worldsim.model.frames import to_uint8
    from worldsim.model.memory import placement
    from worldsim.model.render import carry_pixels, carry_weight

    size = prev_px.shape[-2:]
    d_x0 = s.decode_frames(x0[:, None])[:, 0].float()
    d_base = s.decode_frames(src.base[:, None])[:, 0].float()
    inside = placement(F.affine_grid(src.step[:, :2, :], list(prev_px.shape), align_corners=False))[0]
    keep = F.interpolate(src.from_prev.float(), size=size, mode="nearest") * inside
    change_px = (d_x0 - d_base).abs().mean(1, keepdim=True)
    change_lat = (x0.float() - src.base).abs().mean(1, keepdim=True)
    rms_lat = (x0.float() - src.base).pow(2).mean(1, keepdim=True).sqrt()

    def up(w: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        return F.interpolate(w, size=size, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))

    def mix(w: torch.Tensor) -> np.ndarray:
        return to_uint8(w * warped_px + (1 - w) * d_x0)

    out = {"v: warped pixels, decode where the warp leaves the frame": mix(inside)}
    for lam in (1.0, 0.75, 0.5, 0.25, 0.0):
        out[f"v: warped pixels + {lam} x decoded change where the base is the previous frame's"] = to_uint8(
            keep * (warped_px + lam * (d_x0 - d_base)) + (1 - keep) * d_x0)
    for tau in (0.05, 0.1, 0.2, 0.4, 0.8):
        out[f"v: weight by decoded change, tau {tau}"] = mix(keep * torch.exp(-(change_px / tau) ** 2))
    for tau in (0.1, 0.2, 0.4, 0.8, 1.6):
        out[f"v: weight by latent change, tau {tau}"] = to_uint8(
            carry_pixels(prev_px, d_x0, src.step, carry_weight(x0, src.base, src.from_prev, tau)))
    lat = up(torch.exp(-(change_lat / 0.4) ** 2) * src.from_prev.float()) * inside
    for cap in (0.95, 0.9, 0.8, 0.7):
        out[f"v: latent change tau 0.4, at most {cap} carried"] = mix(cap * lat)
    for tau in (0.4, 0.6):
        out[f"v: RMS latent change, tau {tau}"] = mix(up(torch.exp(-(rms_lat / tau) ** 2) * src.from_prev.float())
                                                      * inside)
    out["v: latent change tau 0.4, nearest upsampling"] = mix(
        up(torch.exp(-(change_lat / 0.4) ** 2) * src.from_prev.float(), "nearest") * inside)
    return out


if __name__ == "__main__":
    main()
