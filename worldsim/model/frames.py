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


def psnr_of_mse(mse: Any) -> Any:
    """PSNR in dB of a mean squared error on the 0-255 scale, 10 log10(255^2 / MSE) (docs/architecture.md section 5),
    with the MSE floored at 1e-10 (about 148 dB for equal frames): the one PSNR formula, for floats, numpy arrays and
    tensors."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))
