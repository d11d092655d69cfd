"""World-model metrics on held-out data (ARCHITECTURE.md section 5). PSNR = 10 log10(255^2 / MSE) on uint8 frames.

`next_frame_psnr`: teacher-forced next frame: real context, real action, one generated frame, compared with the
recorded one; beside it two references from the same windows: the VAE's reconstruction of that frame (the ceiling
the model works under) and copying the last context frame (what a model that ignores dynamics would score).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.data import StoreSet
from worldsim.sampler import WorldSampler


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def next_frame_psnr(sampler: WorldSampler, stores: StoreSet, count: int = 64, steps: int = 8,
                    seed: int = 0) -> dict[str, Any]:
    """Mean next-frame PSNR over `count` evenly spaced held-out windows of the model's window length."""
    ours, recon, copy = [], [], []
    k = sampler.k
    for j, i in enumerate(stores.spread(count)):
        w = stores.read(i)
        frames, actions = w["frames"], w["actions"]
        ctx = frames[: len(frames) - k]
        pred = sampler.rollout(ctx, actions[: len(frames) - 1], steps=steps, seed=seed + j)[len(ctx) :]
        target = frames[len(ctx) :]
        ours.append(psnr_uint8(pred, target))
        recon.append(psnr_uint8(sampler.decode(sampler.encode(target)), target))
        copy.append(psnr_uint8(np.repeat(ctx[-1:], len(target), axis=0), target))
    return {"next_frame_psnr": float(np.mean(ours)), "vae_reconstruction_psnr": float(np.mean(recon)),
            "copy_last_frame_psnr": float(np.mean(copy)), "windows": len(ours), "steps": steps}
