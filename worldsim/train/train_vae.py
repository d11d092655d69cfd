"""Train the video compression network (VAE) on stores; report reconstruction PSNR on held-out episodes.

    cfg = TrainVAEConfig(store=["data/voxel64"], steps=2000, out="runs/vae")
    result = train_vae(cfg)     # {"val_psnr": ..., "checkpoint": ...}
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsim.model import checkpoint as C
from worldsim.model.frames import psnr_of_mse, to_model
from worldsim.model.vae import VAEConfig, VideoVAE, psnr
from worldsim.runtime import autocast, pick_device
from worldsim.train.data import StoreSet, batch_rng, make_loader, store_changes, verify_stores
from worldsim.train.loop import Loop, Metrics, Schedule, check_resume, step_generator


@dataclass
class TrainVAEConfig:
    store: list[str] = field(default_factory=list)
    out: str = "outputs/vae"
    steps: int = 2000
    batch_size: int = 32  # frames (per-frame VAE; pairs of frames with motion_weight) or 8-frame clips (temporal=4)
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    val_store: str | None = None  # held-out store; default: the last `val_episodes` episodes of each store
    val_episodes: int = 1
    val_windows: int = 256  # held-out windows scored at each evaluation
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"
    workers: int = 0
    log_every: int = 25
    eval_every: int = 500
    save_every: int = 500
    motion_weight: float = 0.0  # extra loss weight on pixels that change between consecutive frames (per-frame VAE)
    vae: VAEConfig = field(default_factory=VAEConfig)


def _clip_frames(cfg: TrainVAEConfig) -> int:
    if cfg.vae.temporal != 1:
        return 8
    return 2 if cfg.motion_weight > 0 else 1  # pairs of consecutive frames: what moves between them


def motion_weights(x: torch.Tensor, weight: float, threshold: float = 0.04) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, 1, H, W) of clips x (B, T, 3, H, W) in [-1, 1]: 1 + `weight` where any channel
    changes by more than `threshold` (5 levels of 255) between two consecutive frames of the clip, grown by one pixel.
    Why: an MSE loss spends nothing on a 1-pixel ball (Breakout at 64x64), which is most of what happens in the game;
    the pixels that change are where the game is."""
    moved = (x[:, 1:] - x[:, :-1]).abs().amax(dim=(1, 2)) > threshold  # (B, H, W)
    grown = torch.nn.functional.max_pool2d(moved[:, None].float(), 3, stride=1, padding=1)
    return (1.0 + weight * grown)[:, None]


def _data(cfg: TrainVAEConfig) -> tuple[StoreSet, StoreSet]:
    t = _clip_frames(cfg)
    verify_stores([*cfg.store, cfg.val_store])
    if cfg.val_store:
        return StoreSet(cfg.store, t, "all"), StoreSet([cfg.val_store], t, "all")
    return StoreSet(cfg.store, t, "train", cfg.val_episodes), StoreSet(cfg.store, t, "val", cfg.val_episodes)


@torch.no_grad()
def evaluate(model: VideoVAE, val: StoreSet, windows: int, device: torch.device, precision: str) -> float:
    """Mean reconstruction PSNR (dB, posterior mean decoded) over a fixed, evenly spaced set of held-out windows."""
    model.eval()
    pick = val.spread(windows)
    scores = []
    for a in range(0, len(pick), 32):
        x = to_model(torch.from_numpy(np.stack([val.read(i)["frames"] for i in pick[a : a + 32]]))).to(device)
        with autocast(device, precision):
            mean, _ = model.moments(x)
            y = model.decode_raw(mean)
        scores.append(psnr(y.flatten(0, 1), x.flatten(0, 1)))
    model.train()
    return float(torch.cat(scores).mean())


@torch.no_grad()
def latent_statistics(model: VideoVAE, stores: StoreSet, device: torch.device, precision: str, seed: int,
                      batches: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of posterior means over a fixed sample of training windows."""
    model.eval()
    zs = []
    for b in range(batches):
        x = to_model(stores.batch(batch_rng(seed, b, 999), 32)["frames"]).to(device)
        with autocast(device, precision):
            mean, _ = model.moments(x)
        zs.append(mean.float().transpose(0, 2).flatten(1))  # (C, ...)
    z = torch.cat(zs, dim=1)
    model.train()
    return z.mean(1), z.std(1).clamp_min(1e-4)


def train_vae(cfg: TrainVAEConfig) -> dict[str, Any]:
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    stores, val = _data(cfg)
    model = VideoVAE(cfg.vae).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    out = Path(cfg.out)
    start = 0
    prev, meta = C.resume_point(out, "vae")
    if prev is not None:
        check_resume(out, meta["step"], meta.get("train", {}), asdict(cfg), ("val_episodes", "vae", "motion_weight"),
                     store_changes(meta.get("stores", []), stores))
        model.load_state_dict(C.load_tensors(prev, "model"))
        C.load_optimizer(opt, C.load_tensors(prev, "optim"), meta["optimizer"])
        start = int(meta["step"])
        print(f"resumed from step {start} ({prev})")
    metrics = Metrics(out, resume_step=start)
    clips = cfg.batch_size if _clip_frames(cfg) != 2 else max(1, cfg.batch_size // 2)  # batch_size frames in pairs
    loader = make_loader(stores, clips, cfg.seed, start_step=start, workers=cfg.workers)
    loop = Loop(opt, model.parameters(), Schedule(cfg.steps, cfg.lr, cfg.warmup, cfg.grad_clip), out, "train-vae",
                start=start)
    val_psnr, t0, seen = None, time.perf_counter(), 0
    for step in loop:
        x = to_model(next(loader)["frames"]).to(device)  # (B, T, 3, H, W)
        with autocast(device, cfg.precision):
            recon, kl = model(x, generator=step_generator(cfg.seed, step, 0, device))
        err = (recon.float() - x).pow(2)
        mse = err.mean()
        if cfg.motion_weight > 0:
            w = motion_weights(x, cfg.motion_weight)
            loss = (err * w).mean() / w.mean() + cfg.vae.kl_weight * kl
        else:
            loss = mse + cfg.vae.kl_weight * kl
        loop.update(loss)
        seen += x.shape[0] * x.shape[1]
        if loop.due(cfg.log_every):
            rate = seen / (time.perf_counter() - t0)
            train_psnr = float(psnr_of_mse(mse.detach() * 127.5**2))  # mse on the [-1, 1] scale
            metrics.log(loop.done, {"loss": loss.item(), "mse": mse.item(), "kl": kl.item(), "psnr_train": train_psnr,
                                    "grad_norm": loop.grad_norm, "lr": loop.lr, "frames_per_s": rate})
            loop.show(f"loss {loss.item():.4f} psnr {train_psnr:.1f} dB {rate:.0f} frames/s")
        if loop.due(cfg.eval_every):
            val_psnr = evaluate(model, val, cfg.val_windows, device, cfg.precision)
            metrics.log(loop.done, {"val_psnr": val_psnr})
        if loop.due(cfg.save_every):
            mean, std = latent_statistics(model, stores, device, cfg.precision, cfg.seed)
            model.latent_mean.copy_(mean)
            model.latent_std.copy_(std)
            _save(model, opt, cfg, stores, loop.done, val_psnr)
    metrics.close()
    ck = C.resolve(out)
    return {"val_psnr": C.load_meta(ck).get("val_psnr"), "checkpoint": str(ck)}


def _save(model: VideoVAE, opt: torch.optim.Optimizer, cfg: TrainVAEConfig, stores: StoreSet, step: int,
          val_psnr: float | None) -> None:
    opt_tensors, opt_meta = C.optimizer_tensors(opt)
    meta = {"kind": "vae", "vae": asdict(cfg.vae), "train": asdict(cfg), "val_psnr": val_psnr,
            "stores": [i.as_dict() for i in stores.infos], "fps": stores.fps, "optimizer": opt_meta,
            "resolutions": [list(r) for r in stores.resolutions()]}
    C.save(cfg.out, step, {"model": model.state_dict(), "optim": opt_tensors}, meta)
