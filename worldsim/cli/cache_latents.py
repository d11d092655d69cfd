"""worldsim cache-latents: encode every frame of a store once with a trained (per-frame) VAE into a latent store.

`worldsim train store=LATENT_STORE vae=THE_SAME_VAE ...` then reads latents instead of encoding frames each step
(the encoder is a large part of a CPU training step). The latent store keeps the source's actions, captions,
weights and provenance, and records the source's digest and the VAE's; training refuses latents of another VAE.

examples:
  worldsim cache-latents store=data/voxel64 vae=runs/vae64 out=data/voxel64-latents
  worldsim train store=data/voxel64-latents vae=runs/vae64 model=tiny steps=2000 out=runs/dit64
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from worldsim.cli import build
from worldsim.errors import InputError


@dataclass
class CacheLatentsConfig:
    store: str = "???"
    vae: str = "???"
    out: str = "???"
    batch: int = 128
    device: str = "auto"
    precision: str = "bf16"


def main(raw) -> int:
    import torch
    from tqdm import tqdm

    from store import open_store
    from store.latents import cache_latents
    from worldsim.model.frames import to_model
    from worldsim.model.vae import load_vae
    from worldsim.runtime import autocast, pick_device

    cfg = build(CacheLatentsConfig, raw, "cache-latents config")
    if cfg.batch <= 0:
        raise InputError(f"batch must be positive, got {cfg.batch}")
    device = pick_device(cfg.device)
    vae, meta = load_vae(cfg.vae, device)
    if vae.cfg.temporal != 1:
        raise InputError("only per-frame VAEs (vae.temporal=1) can be cached: a temporal VAE's latents depend on "
                         "where a window starts")
    total = open_store(cfg.store).attrs["stats"]["frames"]

    @torch.no_grad()
    def encode(frames):
        with autocast(device, cfg.precision):
            z = vae.encode(to_model(frames)[:, None].to(device))  # (n, 1, C, h, w)
        return z[:, 0].float().cpu().numpy()

    bar = tqdm(total=total, desc="cache-latents", unit="frame", delay=0.5)
    try:
        attrs = cache_latents(cfg.store, cfg.out, encode, {"digest": meta["digest"], "path": meta["path"],
                                                           "config": meta["vae"]}, cfg.batch, bar.update)
    finally:
        bar.close()
    print(json.dumps({"out": cfg.out, "frames": attrs["stats"]["frames"], "digest": attrs["digest"],
                      "vae_digest": meta["digest"]}))
    return 0
