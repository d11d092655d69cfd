"""Distil a world model's VAE decoder into a light one (`worldsim/model/light_decoder.py`) that DreamEnv uses.

    cfg = TrainDecoderConfig(ckpt="runs/dit", store=["data/voxel64"], steps=1500)
    result = train_decoder(cfg)   # {"metrics": {...}, "checkpoint": "runs/dit/decoder/checkpoints/step_..."}

Each step: frames of the stores -> the world model's VAE encoder (normalised posterior means, what the DiT makes)
-> a little Gaussian noise (dreamed latents are not exactly encoder latents) -> the full decoder's frames are the
target, the light decoder's are compared to them (MSE). Held-out scores: PSNR of the light decoder against the full
decoder, and of each against the real frames, on a fixed set of held-out frames.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.frames import psnr_of_mse, to_model
from worldsim.model.light_decoder import LightDecoder, LightDecoderConfig, default_out
from worldsim.runtime import autocast, pick_device
from worldsim.train.data import StoreSet, batch_rng, verify_stores
from worldsim.train.loop import Loop, Metrics, Schedule, check_resume, step_generator
from worldsim.train.train_reward import load_world_vae


@dataclass
class TrainDecoderConfig:
    ckpt: str = ""  # world-model (DiT) run directory or checkpoint: its VAE is the teacher
    store: list[str] = field(default_factory=list)
    out: str | None = None  # default: <run dir of ckpt>/decoder (where DreamEnv looks)
    steps: int = 1500
    batch_size: int = 32  # frames per step
    lr: float = 2e-3
    warmup: int = 50
    grad_clip: float = 1.0
    noise: float = 0.1  # std of the Gaussian noise added to the latents (in their normalised units)
    val_store: str | None = None  # held-out store; default: the last `val_episodes` episodes of each store
    val_episodes: int = 1
    val_frames: int = 512
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"
    log_every: int = 50
    decoder: LightDecoderConfig = field(default_factory=LightDecoderConfig)


def _psnrs(student: LightDecoder, vae: Any, frames: torch.Tensor, device: torch.device, precision: str
           ) -> dict[str, float]:
    """Held-out PSNR (dB, uint8 scale) of light vs full decoder, light vs real, full vs real."""
    sums = {"light_vs_full": 0.0, "light_vs_real": 0.0, "full_vs_real": 0.0}
    n = 0
    with torch.no_grad():
        for a in range(0, len(frames), 64):
            x = frames[a : a + 64].to(device)
            with autocast(device, precision):
                z = vae.encode(x[:, None])
                full = vae.decode(z)[:, 0].float().clamp(-1, 1)
                light = student(z[:, 0]).float()
            q = lambda t: torch.round((t + 1) * 127.5)  # noqa: E731  (the uint8 frames people see)
            for key, (p, r) in {"light_vs_full": (light, full), "light_vs_real": (light, x),
                                "full_vs_real": (full, x)}.items():
                sums[key] += float((q(p) - q(r)).pow(2).mean(dim=(1, 2, 3)).sum())
            n += len(x)
    return {k: round(float(psnr_of_mse(v / n)), 3) for k, v in sums.items()}


def train_decoder(cfg: TrainDecoderConfig) -> dict[str, Any]:
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    vae, meta, ck = load_world_vae(cfg.ckpt, device)
    verify_stores([*cfg.store, *([cfg.val_store] if cfg.val_store else [])])
    if cfg.val_store:
        train, val = StoreSet(cfg.store, 1, "all"), StoreSet([cfg.val_store], 1, "all")
    else:
        train, val = StoreSet(cfg.store, 1, "train", cfg.val_episodes), StoreSet(cfg.store, 1, "val",
                                                                                 cfg.val_episodes)
    sizes = {(int(meta["height"]), int(meta["width"]))}
    if set(train.resolutions()) - sizes:
        raise InputError(f"the stores hold frames of {sorted(train.resolutions())}; the world model makes "
                         f"{sorted(sizes)}")
    out = Path(cfg.out) if cfg.out else default_out(ck)
    student = LightDecoder(cfg.decoder, vae.cfg.latent_channels, vae.cfg.spatial).to(device)
    student = student.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    prev, prev_meta = C.resume_point(out, "decoder")
    start = 0
    if prev is not None:
        check_resume(out, prev_meta["step"], prev_meta.get("train", {}), asdict(cfg), ("decoder", "noise"), [])
        student.load_state_dict(C.load_tensors(prev, "model"))
        C.load_optimizer(opt, C.load_tensors(prev, "optim"), prev_meta["optimizer"])
        start = int(prev_meta["step"])
        print(f"resumed from step {start} ({prev})")
    pick = val.spread(cfg.val_frames)
    val_frames = to_model(np.stack([np.asarray(val.read(i)["frames"][0]) for i in pick]))
    metrics = Metrics(out, resume_step=start)
    loop = Loop(opt, student.parameters(), Schedule(cfg.steps, cfg.lr, cfg.warmup, cfg.grad_clip), out,
                "distill-decoder", start=start)
    t0, seen = time.perf_counter(), 0
    for step in loop:
        x = to_model(train.batch(batch_rng(cfg.seed, step), cfg.batch_size)["frames"]).to(device)  # (B, 1, 3, H, W)
        g = step_generator(cfg.seed, step, 0, device)
        with torch.no_grad(), autocast(device, cfg.precision):
            z = vae.encode(x)  # (B, 1, C, h, w)
            z = z.float() + cfg.noise * torch.randn(z.shape, generator=g, device=device)
            target = vae.decode(z)[:, 0].float().clamp(-1, 1)
        with autocast(device, cfg.precision):
            pred = student(z[:, 0])
        loss = (pred.float() - target).pow(2).mean()
        loop.update(loss)
        seen += len(x)
        if loop.due(cfg.log_every):
            rate = seen / (time.perf_counter() - t0)
            metrics.log(loop.done, {"loss": loss.item(), "psnr_vs_full": float(psnr_of_mse(loss.item() * 127.5**2)),
                                    "grad_norm": loop.grad_norm, "lr": loop.lr, "frames_per_s": rate})
            loop.show(f"loss {loss.item():.5f} {rate:.0f} frames/s")
    student.eval()
    scores = _psnrs(student, vae, val_frames, device, cfg.precision)
    metrics.log(cfg.steps, {f"val_{k}": v for k, v in scores.items()})
    metrics.close()
    optim_tensors, optim_meta = C.optimizer_tensors(opt)
    path = C.save(out, cfg.steps, {"model": student.state_dict(), "optim": optim_tensors}, {
        "kind": "decoder", "decoder": asdict(cfg.decoder), "latent_channels": vae.cfg.latent_channels,
        "spatial": vae.cfg.spatial, "vae_digest": meta["vae"]["digest"], "world_model": str(ck),
        "world_model_digest": C.digest(ck), "train": asdict(cfg), "optimizer": optim_meta, "val": scores,
        "stores": [{"url": u} for u in cfg.store]})
    return {"metrics": scores, "checkpoint": str(path)}

