"""Goal maps: where a tracked goal would appear in the next frame, painted on the latent grid (docs/world_model.md,
"Goal-conditioned dreams").

A world model given only pixels cannot draw a goal it has never seen: turn towards a navigate pillar that was off
screen and the dream shows grass. The engine knows where the goal is (navigate's task state: the pillar's axis in
blocks along the view's horizontal forward and right axes), and so does a dream whose reward model tracks it
(odometry, worldsim/model/reward.py). A DiT with `goal_map` reads, for each frame, a two-channel map the size of
its latents:

    channel 0  how much of each latent pixel the pillar covers, projected with a pinhole camera of vertical field
               of view `fov` (square pixels, level view, flat ground: a 1-block-wide, PILLAR-block-tall column
               whose foot is EYE blocks below the eye); zero where the goal is behind the camera
    channel 1  1 where the goal is known, 0 where it is not (a store without task state, a dream without a tracking
               reward model, the share of training frames whose map is dropped): the model keeps its unconditional
               behaviour for those

The map also draws the goal into the frame's base (the moved previous frame that delta prediction starts from,
`DiT.frame_bases`): base <- base + cover (goal latent - base), the goal latent being the mean VAE latent of the
pillar's pixels in the training data (`goal_latent`, a parameter initialised from data before fine-tuning). So a
model that outputs nothing already shows the pillar where the map puts it, and training only corrects it (the
embedding alone, learned from zero, had not changed a dreamed frame after 1000 fine-tuning steps).

The map of frame j is the goal as known at frame j - 1, turned by the action into frame j (`prior`): the same rule
in training (from the recorded task state) and in a dream (from the reward model's estimate, which needs the new
frame to move its own point), so both see maps of the same kind.

    point = prior(state_prev, actions, yaw_column)      # (..., 2) forward, right after the action's turn
    maps = paint(point, known, h, w, fov)               # (..., 2, h, w)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from worldsim.errors import InputError

CHANNELS = 2
GOAL_KEYS = ("goal_forward", "goal_right")  # the task state's columns that place the goal (navigate's state_keys)
EYE = 1.62  # blocks from the feet to the eye (envs/voxel/player.py) ...
PILLAR = 3.0  # ... and the navigate pillar's height and width in blocks (envs/voxel/tasks.py)
WIDTH = 1.0
NEAR = 0.3  # a goal closer than this along the view (or behind it) is not drawn
SUPER = 4  # sub-pixels per latent pixel and axis for the coverage
PIXEL_MARGIN = 60  # the pillar's magenta: red and blue above green by this much (0-255)


def goal_pixels(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., H, W) bool: navigate's goal pillar (magenta: red and blue both above green by
    PIXEL_MARGIN; its yellow edges are left out)."""
    f = frames.astype(np.int16)
    return (f[..., 0] - f[..., 1] > PIXEL_MARGIN) & (f[..., 2] - f[..., 1] > PIXEL_MARGIN)


@torch.no_grad()
def goal_latent(encode: Callable[[np.ndarray], torch.Tensor], episodes: Iterable[np.ndarray], spatial: int,
                cells: int = 4096) -> torch.Tensor:
    """The mean latent (C,) of latent pixels whose `spatial` x `spatial` pixel cell is at least 3/4 pillar, over the
    frames of `episodes` (each (T, H, W, 3) uint8) until `cells` are found; `encode` turns (T, H, W, 3) uint8 into
    latents (T, C, h, w). Raises InputError when no frame shows the pillar."""
    total, count = None, 0
    for frames in episodes:
        mask = goal_pixels(frames)
        t, h, w = mask.shape
        share = mask.reshape(t, h // spatial, spatial, w // spatial, spatial).mean(axis=(2, 4))
        if not (share >= 0.75).any():
            continue
        z = encode(frames).float()  # (T, C, h, w)
        pick = torch.from_numpy(share >= 0.75)
        found = z.movedim(1, -1)[pick]  # (N, C)
        total = found.sum(0) if total is None else total + found.sum(0)
        count += len(found)
        if count >= cells:
            break
    if total is None:
        raise InputError("model.goal_map: no frame of the stores shows the goal pillar (magenta) at this size; "
                         "the goal's look is learned from frames that show it")
    return total / count


def prior(state: torch.Tensor, actions: torch.Tensor, yaw: int) -> torch.Tensor:
    """The goal point (..., 2) (forward, right, blocks) after the camera turns by the action's yaw: `state` (..., 2)
    where it was, `actions` (..., A) unscaled flat actions, `yaw` the column holding the turn in degrees (to the
    right for positive), or -1 for none (the point is kept). The step forward is left out: at most a third of a
    block, which the next estimate corrects."""
    if yaw < 0:
        return state.float()
    a = torch.deg2rad(actions[..., yaw].float())
    c, s = torch.cos(a), torch.sin(a)
    f, r = state[..., 0].float(), state[..., 1].float()
    return torch.stack([c * f + s * r, -s * f + c * r], dim=-1)


def paint(point: torch.Tensor, known: torch.Tensor, h: int, w: int, fov: float) -> torch.Tensor:
    """Goal maps (..., 2, h, w) of points (..., 2) (forward, right in blocks) with `known` (...) bool (see the module
    docstring for the channels)."""
    lead = point.shape[:-1]
    p = point.reshape(-1, 2).float()
    ok = known.reshape(-1).to(p.device)
    focal = (h / 2) / math.tan(math.radians(fov) / 2)  # latent pixels per unit of (offset / depth)
    depth = p[:, 0].clamp_min(NEAR)
    # the column's edges and its top and bottom in latent pixel coordinates (0 .. w, 0 .. h)
    x0 = w / 2 + focal * (p[:, 1] - WIDTH / 2) / depth
    x1 = w / 2 + focal * (p[:, 1] + WIDTH / 2) / depth
    y0 = h / 2 - focal * (PILLAR - EYE) / depth
    y1 = h / 2 + focal * EYE / depth
    xs = (torch.arange(w * SUPER, device=p.device, dtype=torch.float32) + 0.5) / SUPER
    ys = (torch.arange(h * SUPER, device=p.device, dtype=torch.float32) + 0.5) / SUPER
    inx = (xs[None] >= x0[:, None]) & (xs[None] < x1[:, None])  # (N, w S)
    iny = (ys[None] >= y0[:, None]) & (ys[None] < y1[:, None])  # (N, h S)
    fine = (iny[:, :, None] & inx[:, None, :]).float()  # (N, h S, w S)
    cover = F.avg_pool2d(fine[:, None], SUPER)[:, 0]  # (N, h, w)
    cover = cover * ((p[:, 0] > NEAR) & ok).float()[:, None, None]
    flag = ok.float()[:, None, None].expand(-1, h, w)
    return torch.stack([cover, flag], dim=1).reshape(*lead, CHANNELS, h, w)


def window_maps(states: torch.Tensor, actions: torch.Tensor, known: torch.Tensor, h: int, w: int, fov: float,
                yaw: int) -> torch.Tensor:
    """The maps (B, T, 2, h, w) of a window of frames whose task states are `states` (B, T, 2) and stored-aligned
    actions `actions` (B, T, A) (actions[t] taken after frame t): frame j > 0 gets frame j - 1's goal turned by
    action j - 1 (`prior`), the first frame its own. `known` (B,) or (B, T) bool."""
    turned = prior(states[:, :-1], actions[:, :-1], yaw)
    points = torch.cat([states[:, :1].float(), turned], dim=1)
    if known.dim() == 1:
        known = known[:, None].expand(points.shape[:2])
    return paint(points, known, h, w, fov)
