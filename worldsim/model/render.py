"""Pixel carry: render a dreamed frame from the previous frame's pixels wherever the model kept them.

A learned simulator that predicts each frame as a change to its base (`flow.prediction=delta`; the base is the
previous frame moved by the model's action warp, or a recall from memory: `DiT.frame_bases`) works in the VAE's
latent space, 4x coarser than the pixels. Moving a 16 x 16 latent by a fraction of a latent pixel and decoding it
blurs what the previous frame showed sharply, and every dreamed frame pays the VAE's reconstruction error again.
Measured on the reference recipe's held-out windows (docs/world_model.md, "Pixel carry"): the model's own warp
applied to the previous frame's pixels scores 26.4 dB against the next frame, the same warp applied to its latents
and decoded 24.7, copying the last frame 23.8 (`benchmarks/next_frame_sources.py`).

So the pixels of a new frame are composed, per pixel, from three sources:
- the previous rendered frame, moved by the same affine warp the model used for the frame's base (`grid_sample` at
  pixel resolution: the warp is in normalised image coordinates, so one map serves both sizes), where the base
  pixel came from the previous frame (not from memory), the warp has a source inside the frame, and the model
  changed its base little;
- where the base pixel was recalled from memory (a model with `model.memory`), the pixels of the frame recalled,
  moved by the map the recall used, where it covers and the model changed its base little;
- the VAE's decode of the model's latent prediction everywhere else: new content at the edges, whatever the model
  redraws (a moved object, a block that appears).
The weight of the carried pixels is exp(-(d / tau)^2), d the mean absolute change the model made to its base at
that latent position (normalised latent units; bilinearly upsampled), so a kept region is copied sharply and a
redrawn one comes from the decoder, with a smooth seam. Nothing is learned here: the warp, the recall, the source
of each base pixel and the change are the model's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from worldsim.errors import InputError
from worldsim.model.memory import placement

RENDERS = ("carry", "latent")
# the latent change (mean |x0 - base| over channels, normalised latent units) at which a carried pixel's weight is
# 1/e: the best of 0.1 to 1.6 on the reference recipe's held-out next frames (docs/world_model.md, "Pixel carry")
CARRY_TAU = 0.4


def check_render(render: str) -> str:
    """`render` if it is one of RENDERS, else a one-line InputError."""
    if render not in RENDERS:
        raise InputError(f"render must be one of {', '.join(RENDERS)}, got {render!r}")
    return render


class Source(NamedTuple):
    """Where a new frame's base came from, for B rows (`DiT.frame_bases` and the memory's `Recalled`)."""

    base: torch.Tensor  # (B, C, h, w) the base as the model saw it
    from_prev: torch.Tensor  # (B, 1, h, w) bool: the moved previous frame (else the recall)
    step: torch.Tensor  # (B, 3, 3) the warp of the frame's action: frame(p) ~ previous(step p)
    recall: torch.Tensor  # (B,) long: the frame recalled (an index its caller resolves), -1 where none
    recall_map: torch.Tensor  # (B, 3, 3) from the frame's view into the recalled one


def carry_weight(x0: torch.Tensor, base: torch.Tensor, where: torch.Tensor, tau: float = CARRY_TAU) -> torch.Tensor:
    """How much of each latent position (B, 1, h, w) carried pixels may supply: 0 outside `where` (B, 1, h, w), else
    exp(-(mean |x0 - base| / tau)^2), the model's change to its base there. x0, base (B, C, h, w)."""
    change = (x0.float() - base.float()).abs().mean(dim=1, keepdim=True)
    return torch.exp(-(change / tau) ** 2) * where.float()


def carry_pixels(prev: torch.Tensor, decoded: torch.Tensor, step: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`prev` (B, 3, H, W) moved by `step` (B, 3, 3) (frame(p) ~ prev(step p), normalised coordinates), blended into
    `decoded` (B, 3, H, W) with `weight` (B, 1, h, w) upsampled, and nowhere the map reaches outside `prev`."""
    grid = F.affine_grid(step[:, :2, :].float(), list(prev.shape), align_corners=False)
    moved = F.grid_sample(prev.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside, _ = placement(grid)
    w = F.interpolate(weight.float(), size=prev.shape[-2:], mode="bilinear", align_corners=False) * inside
    return w * moved + (1.0 - w) * decoded.float()


def render_frame(x0: torch.Tensor, decoded: torch.Tensor, prev: torch.Tensor, src: Source,
                 recalled: torch.Tensor | None = None) -> torch.Tensor:
    """A new frame (B, 3, H, W) in [-1, 1]: the model's latents x0 (B, C, h, w) and their decode, the previous
    rendered frame `prev` and, for a model with memory, the rendered pixels of the frames `src.recall` names
    (B, 3, H, W; any content where there is none)."""
    out = carry_pixels(prev, decoded, src.step, carry_weight(x0, src.base, src.from_prev))
    if recalled is not None:
        weight = carry_weight(x0, src.base, ~src.from_prev & (src.recall >= 0)[:, None, None, None])
        out = carry_pixels(recalled, out, src.recall_map, weight)
    return out.clamp(-1.0, 1.0)


def carry_frames(pixels: torch.Tensor, decoded: torch.Tensor, x0: torch.Tensor, sources: list[Source]
                 ) -> torch.Tensor:
    """Consecutive new frames (N, 3, H, W) in [-1, 1] of one trajectory: `pixels` (F, 3, H, W) the frames before
    the first (the last is its previous frame; `Source.recall` indexes them and the new frames after them),
    `decoded` (N, 3, H, W) their latents x0 (N, C, h, w) decoded, `sources` one per new frame (rows of 1)."""
    seen = list(pixels.float())
    for j, src in enumerate(sources):
        k = int(src.recall[0])
        recalled = seen[k][None] if k >= 0 else None
        seen.append(render_frame(x0[j : j + 1], decoded[j : j + 1], seen[-1][None], src, recalled)[0])
    return torch.stack(seen[len(pixels) :])
