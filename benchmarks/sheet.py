"""Contact sheets for the benchmarks that compare dreamed frames with the engine's (goal_dream.py, sharp_dream.py)."""

from __future__ import annotations

import numpy as np


def draw(path: str, rows: list[tuple[str, list[np.ndarray]]], titles: list[str], left: float = 0.14,
         dpi: int = 100) -> None:
    """A grid of frames: one row per (label, frames), one column per title; written to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(titles), squeeze=False,
                             figsize=(1.0 * len(titles) + 1.6, 1.0 * len(rows)))
    for r, (label, frames) in enumerate(rows):
        for c, frame in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(frame)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.2)
    fig.subplots_adjust(left=left)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"wrote {path}")
