"""Held-out reconstruction PSNR of VAEs on whole frames and on the pixels that move: what `train-vae motion_weight`
is for (a 1-pixel Breakout ball that a plain MSE ignores).

    python benchmarks/vae_motion.py --store runs/breakout64/heldout --vae runs/breakout64/vae runs/vae_mw0

Moving pixels: those that change by more than 5 levels between a frame and the one before it, grown by one pixel
(`worldsim.train.train_vae.motion_weights`, the loss's own mask), scored on the later frame of each pair.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import store as S
from worldsim.model.frames import psnr_of_mse, to_model, to_uint8
from worldsim.model.vae import load_vae
from worldsim.train.train_vae import motion_weights


def score(vae_path: str, store: str) -> tuple[float, float, float]:
    """(whole-frame PSNR, moving-pixel PSNR, share of pixels that move) on every episode of `store`."""
    vae, _ = load_vae(vae_path)
    se_all = n_all = se_mov = n_mov = 0.0
    for i in S.episode_indices(store):
        f = S.read_episode(store, i)["frames"]
        with torch.no_grad():
            r = np.concatenate([to_uint8(vae.decode(vae.encode(to_model(f[a : a + 64])[None]))[0])
                                for a in range(0, len(f), 64)])
        err = (r.astype(np.float64) - f) ** 2
        x = to_model(f)
        moved = (motion_weights(torch.stack([x[:-1], x[1:]], 1), 1.0)[:, 0, 0] > 1).numpy()  # (T - 1, H, W)
        se_all, n_all = se_all + err.sum(), n_all + err.size
        later = err[1:].mean(-1)
        se_mov, n_mov = se_mov + later[moved].sum(), n_mov + moved.sum()
    return float(psnr_of_mse(se_all / n_all)), float(psnr_of_mse(se_mov / n_mov)), float(n_mov / (n_all / 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="a held-out store of the VAEs' game")
    ap.add_argument("--vae", nargs="+", required=True, help="VAE runs (worldsim train-vae) to compare")
    args = ap.parse_args()
    print("| VAE | whole frames (dB) | pixels that move (dB) | share of pixels that move |")
    print("|---|---:|---:|---:|")
    for v in args.vae:
        whole, moving, share = score(v, args.store)
        print(f"| {v} | {whole:.2f} | {moving:.2f} | {share:.4f} |")


if __name__ == "__main__":
    main()
