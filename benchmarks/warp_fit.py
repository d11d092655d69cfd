"""Is the action warp's form the limit? Fit an action-conditioned warp to pixel pairs, affine or projective.

    python benchmarks/warp_fit.py --train runs/recipe/data --heldout runs/recipe/heldout

Each form is an odd generator exponentiated, as the model's warp with memory (A(a) = expm(G(a) - G(-a)), G a small
MLP of the action): 6 parameters (affine) or 8 (projective: exact for a camera that only rotates). Trained from
scratch on --pairs consecutive training frames to the masked pixel MSE of the moved previous frame against the next
one; scored on 1024 held-out pairs: the PSNR of the moved previous frame (border padding) beside copying it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def pairs(store: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from worldsim.model.frames import to_model
    from worldsim.train.data import StoreSet

    ws = StoreSet([store], 2, "all")
    idx = np.random.default_rng(seed).choice(len(ws), size=min(n, len(ws)), replace=False)
    wins = [ws.read(int(i)) for i in idx]
    return (to_model(np.stack([w["frames"][0] for w in wins])), to_model(np.stack([w["frames"][1] for w in wins])),
            torch.from_numpy(np.stack([w["actions"][0] for w in wins])).float())


def grid_of(maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sampling grid (N, h, w, 2) of 3x3 maps, with the projective division."""
    ys, xs = (torch.arange(h) + 0.5) / h * 2 - 1, (torch.arange(w) + 0.5) / w * 2 - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    p = torch.stack([xx, yy, torch.ones_like(xx)], -1).reshape(-1, 3)
    q = p @ maps.transpose(1, 2)
    return (q[..., :2] / q[..., 2:].clamp_min(1e-3)).reshape(len(maps), h, w, 2)


def fit(kind: str, train: tuple, held: tuple, steps: int) -> tuple[float, float]:
    from worldsim.eval.metrics import psnr_uint8
    from worldsim.model.frames import to_uint8

    torch.manual_seed(0)
    prev, nxt, acts = train
    scale = acts.abs().amax(0).clamp_min(1e-6)
    n_out = 8 if kind == "projective" else 6
    net = nn.Sequential(nn.Linear(acts.shape[1], 64), nn.SiLU(), nn.Linear(64, n_out))
    nn.init.zeros_(net[2].weight)
    nn.init.zeros_(net[2].bias)

    def moved(p: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = a / scale
        g = torch.cat([net(a) - net(-a), torch.zeros(len(a), 9 - n_out)], 1).reshape(-1, 3, 3)
        grid = grid_of(torch.linalg.matrix_exp(g), *p.shape[-2:])
        inside = (grid.abs() <= 1).all(-1).float()[:, None]
        return F.grid_sample(p, grid, mode="bilinear", padding_mode="border", align_corners=False), inside

    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        b = torch.randint(0, len(prev), (128,), generator=gen)
        m, inside = moved(prev[b], acts[b])
        loss = (((m - nxt[b]) ** 2) * inside).sum() / (inside.sum() * 3).clamp_min(1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        m, _ = moved(held[0], held[2])
    real = to_uint8(held[1])
    return (float(np.mean([psnr_uint8(to_uint8(m[i])[None], real[i : i + 1]) for i in range(len(m))])),
            float(np.mean([psnr_uint8(to_uint8(held[0][i])[None], real[i : i + 1]) for i in range(len(m))])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="a frame store (consecutive frames and their actions)")
    ap.add_argument("--heldout", required=True, help="a held-out frame store of the same game")
    ap.add_argument("--pairs", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    train, held = pairs(args.train, args.pairs, 0), pairs(args.heldout, 1024, 1)
    print("| warp | held-out PSNR of the moved previous frame (dB) | copy-last (dB) |")
    print("|---|---:|---:|")
    for kind in ("affine", "projective"):
        warped, copy = fit(kind, train, held, args.steps)
        print(f"| {kind} | {warped:.2f} | {copy:.2f} |")


if __name__ == "__main__":
    main()
