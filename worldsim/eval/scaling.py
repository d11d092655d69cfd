"""Measurements of the scaling study (`worldsim scaling`, docs/scaling.md): training FLOPs per step, held-out flow
loss, and a power-law fit of loss against compute.

- `train_flops`: FLOPs of one training step (forward and backward of the flow loss on one batch), counted by torch's
  `FlopCounterMode` (matrix multiplies, convolutions, attention), not estimated from the parameter count.
- `heldout_loss`: the training objective on fixed held-out windows with fixed noise (the same draws for every
  checkpoint), with the EMA weights that sampling uses: a low-noise measure to compare checkpoints by.
- `fit_power_law`: L(C) = a * C^(-b) by least squares in log-log space, with its R^2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldsim.model.sampler import WorldSampler
from worldsim.train.data import StoreSet, collate
from worldsim.train.loop import step_generator
from worldsim.train.train_dit import batch_latents, batch_loss, config_from_meta


def parameters(run: str | Path) -> int:
    return sum(p.numel() for p in WorldSampler.load(run).model.dit.parameters())


def train_flops(run: str | Path, store: list[str]) -> float:
    """FLOPs of one training step of the run's model and config on one batch of `store` (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    s = WorldSampler.load(run, use_ema=False)
    model, cfg = s.model.train(), config_from_meta(s.meta["train"])
    stores = StoreSet(store, cfg.frames, "all", history=cfg.model.memory)
    batch = stores.batch(np.random.default_rng(0), cfg.batch_size)
    g = step_generator(cfg.seed, 0, 0, torch.device("cpu"))
    cfg.precision = "fp32"  # counted in fp32: the count does not depend on the dtype
    z, past = batch_latents(batch, stores, s.vae, torch.device("cpu"), cfg.precision, cfg.model.memory)
    with FlopCounterMode(display=False) as counter:
        loss = batch_loss(cfg, model, model, z, batch, g, past)
        loss.backward()
    return float(counter.get_total_flops())


@torch.no_grad()
def heldout_loss(sampler: WorldSampler, heldout: str, windows: int = 32, batch: int = 8, seed: int = 0) -> float:
    """The flow loss of a loaded model (`WorldSampler.load`: the EMA weights) on `windows` evenly spread held-out
    windows, with noise and dropout drawn from fixed generators (`seed`): the same draws for every checkpoint."""
    cfg = config_from_meta(sampler.meta["train"])
    stores = StoreSet([heldout], cfg.frames, "all", history=cfg.model.memory)
    picks = stores.spread(windows)
    total, n = 0.0, 0
    for j, a in enumerate(range(0, len(picks), batch)):
        items = [stores.read(i) for i in picks[a : a + batch]]
        b = collate(items)
        z, past = batch_latents(b, stores, sampler.vae, sampler.device, cfg.precision, cfg.model.memory)
        g = step_generator(seed, j, 0, torch.device("cpu"), salt=0x5CA1E)
        total += float(batch_loss(cfg, sampler.model, sampler.model, z, b, g, past)) * len(items)
        n += len(items)
    return total / max(n, 1)


def fit_power_law(compute: list[float], loss: list[float]) -> dict[str, float]:
    """L = a * C^(-b) fitted to (compute, loss) in log-log space; returns a, b and R^2 (of log L)."""
    x, y = np.log(np.asarray(compute, np.float64)), np.log(np.asarray(loss, np.float64))
    if len(x) < 2:
        return {"a": float("nan"), "b": float("nan"), "r2": float("nan")}
    slope, icpt = np.polyfit(x, y, 1)
    pred = slope * x + icpt
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")
    return {"a": float(np.exp(icpt)), "b": float(-slope), "r2": r2}
