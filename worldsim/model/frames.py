"""Frames in and out of the model: uint8 (..., H, W, 3) on disk, float (..., 3, H, W) in [-1, 1] inside.

The one conversion each way (docs/architecture.md, "Data contract"); everything else calls these.
"""

from __future__ import annotations

import numpy as np
import torch


def to_model(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]: the one conversion into the model."""
    x = torch.as_tensor(np.asarray(frames) if isinstance(frames, np.ndarray) else frames)
    return x.movedim(-1, -3).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3) numpy: the one conversion out of the model."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()
