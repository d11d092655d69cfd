"""Pose-indexed memory: recall the earlier frame that best shows the view a new frame will have.

A context window of T frames forgets what left it; a look away and back longer than the window comes back to a
view the model has to invent. Here every frame has a pose made of the model's own action warps (`DiT.step_affines`:
the affine map A_j with frame_j(p) ~ frame_{j-1}(A_j p), learned from the data). Chaining them gives, for any
earlier frame i, the map M_ij = A_{i+1} ... A_j with frame_j(p) ~ frame_i(M_ij p): where frame j's pixels were
seen in frame i. The memory of frame j is the earlier frame whose map covers the most of frame j's view (ties go to
the more recent one), moved into frame j's view by that map, with a channel saying which pixels it covers. The DiT
stacks it beside the previous frame (`DiTConfig.memory`), so "this was seen before" is one linear map, as "this
did not move" is for the previous frame. A third extra channel says how far the recall moved each pixel (0: the
same pose, an exact recall; the affine warps approximate a camera's motion, so the further, the less exact), which
the model needs to tell an exact recall from a rough one (measured: without it, a model given the frame it left
at the same pose still leaned on the warped previous frame). The frame's base (`DiT.base_frames`) then takes each
pixel from the recall where it needed a smaller move than the previous frame (by RECALL_MARGIN), or where the
previous frame's move brought in the edge.

Frames i <= j - 2 are candidates: the frame just before (j - 1) is already the base. Shapes: latents (B, L, C, h, w),
maps (B, L, 3, 3), returned memory (B, C + 2, h, w): the moved latents, the coverage (1 inside, 0 outside), and
the distance each covered pixel was moved (normalised image units / 2, at most 1).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

# channels a memory adds to its latents: coverage and distance moved
MEMORY_EXTRA = 2
# a recalled pixel replaces the moved previous frame's in a frame's base when it was moved this much less
# (normalised image units / 2: 0.01 is a third of a latent pixel at 16 x 16), so ties keep the newer frame
RECALL_MARGIN = 0.01
# earlier frames a sampler or DreamEnv keeps as recall candidates (latents: 16 KB each at 64x64, 16 channels)
MEMORY_BANK = 128
# the probe points whose share inside [-1, 1]^2 is a candidate's coverage of the target view
_PROBE = 8
# below this coverage a candidate is no memory at all
MIN_COVER = 0.25
# coverage lost per frame of age: among frames that cover the view alike, the more recent one wins
AGE_PENALTY = 0.002


def as_3x3(theta: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) affine -> (..., 3, 3) with the row [0, 0, 1]."""
    row = torch.zeros(*theta.shape[:-2], 1, 3, dtype=theta.dtype, device=theta.device)
    row[..., 0, 2] = 1.0
    return torch.cat([theta, row], dim=-2)


def chain(steps: torch.Tensor) -> torch.Tensor:
    """Step maps (B, L, 3, 3) (A_j: frame j -> frame j - 1; A_0 unused) -> (B, L, L, 3, 3), [b, j, i] = the map
    from frame j's view into frame i's for i <= j (identity at i = j; entries i > j are the identity, unused)."""
    b, n = steps.shape[:2]
    eye = torch.eye(3, dtype=steps.dtype, device=steps.device)
    rows = [eye.expand(b, n, 3, 3)]
    for j in range(1, n):
        prev = rows[-1]  # maps from frame j - 1 into each i
        here = prev @ steps[:, j, None]  # from frame j: first into j - 1, then on into i
        keep = (torch.arange(n, device=steps.device) < j)[None, :, None, None]
        rows.append(torch.where(keep, here, eye))
    return torch.stack(rows, dim=1)


def coverage(maps: torch.Tensor) -> torch.Tensor:
    """Share of the target view (a _PROBE x _PROBE grid of points) that `maps` (..., 3, 3) send inside [-1, 1]^2."""
    s = (torch.arange(_PROBE, dtype=maps.dtype, device=maps.device) + 0.5) / _PROBE * 2 - 1
    yy, xx = torch.meshgrid(s, s, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten(), torch.ones_like(xx.flatten())])  # (3, P)
    q = maps[..., :2, :] @ pts  # (..., 2, P)
    return (q.abs() <= 1.0).all(dim=-2).float().mean(-1)


def placement(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Of a sampling grid (N, h, w, 2) (`F.affine_grid`): which pixels it takes from inside the source (N, 1, h, w)
    float 0/1, and how far each was moved (normalised image units / 2, at most 1), (N, 1, h, w)."""
    n, h, w = grid.shape[:3]
    still = F.affine_grid(torch.eye(2, 3, device=grid.device).expand(n, 2, 3), [n, 1, h, w], align_corners=False)
    inside = (grid.abs() <= 1.0).all(dim=-1).float()[:, None]
    return inside, ((grid - still).norm(dim=-1) / 2).clamp(max=1.0)[:, None]


class Recalled(NamedTuple):
    """What `recall` chose for each target row: the bank index (of `maps`' order), whether it recalled anything, and
    the map (B, 3, 3) from the target's view into that frame (pixel carry moves the frame's pixels by it,
    worldsim/model/render.py)."""

    best: torch.Tensor  # (B,) long
    found: torch.Tensor  # (B,) bool
    map: torch.Tensor  # (B, 3, 3)


def recall(bank: torch.Tensor, maps: torch.Tensor, ok: torch.Tensor, age: torch.Tensor,
           slots: torch.Tensor | None = None, chosen: list | None = None) -> torch.Tensor:
    """The memory of one target frame per row.

    bank (B, L, C, h, w) earlier latents; maps (B, L, 3, 3) from the target's view into each; ok (B, L) which may be
    recalled; age (B, L) frames between each and the target. `slots` (L,): where the bank holds the frame that
    maps[:, j] describes (a ring buffer, DreamCore's), default j. Returns (B, C + 2, h, w); zeros where nothing
    covers at least MIN_COVER of the view. `chosen`, a list, receives the choice (`Recalled`)."""
    b, c, h, w = bank.shape[0], *bank.shape[2:]
    cover = coverage(maps.float())
    score = torch.where(ok, cover - AGE_PENALTY * age.float(), torch.full_like(cover, -1.0))
    best = score.argmax(dim=1)  # (B,)
    pick = torch.arange(b, device=bank.device)
    found = (cover[pick, best] >= MIN_COVER) & ok[pick, best]
    if chosen is not None:
        chosen.append(Recalled(best, found, maps[pick, best].float()))
    theta = maps[pick, best, :2, :].float()
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    src = best if slots is None else slots[best]
    moved = F.grid_sample(bank[pick, src].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside, moved_by = placement(grid)
    out = torch.cat([moved, inside, moved_by * inside], dim=1)
    return out * found[:, None, None, None].float()


def window_memory(bank: torch.Tensor, steps: torch.Tensor, first: int, valid: torch.Tensor | None = None,
                  chosen: list | None = None) -> torch.Tensor:
    """Memories of frames first .. n - 1 of a sequence, n = steps.shape[1] (>= the bank's L: a target may be the
    frame being drawn, one past the bank). bank (B, L, C, h, w), steps (B, n, 3, 3) the step maps of all n frames,
    valid (B, L) which bank frames exist (padding before an episode's start does not). Returns (B, n - first, C + 2,
    h, w); `chosen`, a list, receives each target's `Recalled` (bank indices)."""
    b, n_bank = bank.shape[:2]
    n = steps.shape[1]
    maps = chain(steps.float())  # (B, n, n, 3, 3)
    idx = torch.arange(n_bank, device=bank.device)
    ok_all = torch.ones(b, n_bank, dtype=torch.bool, device=bank.device) if valid is None else valid.bool()
    out = []
    for j in range(first, n):
        ok = ok_all & (idx <= j - 2)[None]
        age = (j - idx).expand(b, n_bank)
        out.append(recall(bank, maps[:, j, :n_bank], ok, age, chosen=chosen))
    return torch.stack(out, dim=1)
