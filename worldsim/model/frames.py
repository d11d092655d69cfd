"""Frames in and out of the model: uint8 (..., H, W, 3) on disk, float (..., 3, H, W) in [-1, 1] inside.

The one conversion each way (docs/architecture.md, "Data contract"); everything else calls these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_model(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]: the one conversion into the model."""
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    return x.movedim(-1, -3).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3) numpy: the one conversion out of the model."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """A normalised 1-D gaussian of std `sigma` over offsets -radius..radius (default radius ceil(3 sigma)), float64."""
    r = int(np.ceil(3 * sigma)) if radius is None else radius
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 frames (..., H, W, C) through a gaussian blur of std `sigma` pixels (separable, radius ceil(3 sigma),
    edges repeated); sigma 0 returns them as they are."""
    if sigma <= 0:
        return frames
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    x = frames.astype(np.float32)
    for axis in (-3, -2):  # rows, then columns
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        xp = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(w * np.take(xp, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def psnr_of_mse(mse: Any) -> Any:
    """PSNR in dB of a mean squared error on the 0-255 scale, 10 log10(255^2 / MSE) (docs/architecture.md section 5),
    with the MSE floored at 1e-10 (about 148 dB for equal frames): the one PSNR formula, for floats, numpy arrays and
    tensors."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))
