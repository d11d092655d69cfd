"""Per-segment quality scores, stored beside the data so a "premium" subset can be picked or weighted up."""

from __future__ import annotations

import numpy as np


def segment_quality(frames: np.ndarray, n_events: int, caption: str) -> dict[str, float]:
    """Scores of one segment. frames: (T, H, W, 3) uint8.

    motion: mean absolute change between consecutive frames, in [0, 1];
    diversity: mean per-frame pixel standard deviation (visual complexity), in [0, 1];
    events: how many events happened; caption_words: words in the dense caption.
    """
    f = frames[:: max(1, len(frames) // 8)].astype(np.float32)  # up to ~8 frames: cheap and enough
    motion = float(np.abs(np.diff(f, axis=0)).mean() / 255.0) if len(f) > 1 else 0.0
    diversity = float(f.reshape(len(f), -1, 3).std(axis=1).mean() / 255.0)
    return {"quality_motion": motion, "quality_diversity": diversity, "quality_events": float(n_events),
            "quality_caption_words": float(len(caption.split()))}
