"""Rectified flow with a noise level per frame (diffusion forcing): training targets and few-step samplers.

x_t = (1 - t) x_0 + t eps, t in [0, 1] per frame (t = 0 clean, t = 1 pure noise); the network predicts the
velocity v = eps - x_0 (Liu et al. 2022; Esser et al. 2024). Training draws t from a logit-normal shifted towards
noise as token counts grow (SD3's resolution shift), independently per frame (Chen et al. 2024, Diffusion Forcing)
or shared by the whole clip, and marks random frames as clean *context* with a little noise on them (the
context-noise augmentation of GameNGen/Oasis that stops autoregressive drift). The same model then does
text-to-video (no context), image-to-video and extension (a prefix), backward extension (a suffix), connection
(first and last), loops and SDEdit, by choosing which frames are context at sampling time.

`teacher_targets` serves the learned simulator's objective instead (`objective=teacher_forcing`): each frame of the
window noised on its own, beside a lightly noised clean copy of the window that is its past (`DiT.forward_teacher`),
with `p_pure_noise` of the frames at t = 1, where every sample starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from worldsim.errors import InputError


@dataclass
class FlowConfig:
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift_base_tokens: int = 256  # tokens at which the time shift is 1 (sqrt scaling above)
    p_shared_t: float = 0.3  # clips with one noise level for all frames (text-to-video)
    p_context: float = 0.6  # clips with some clean context frames
    context_noise: float = 0.1  # context frames get t ~ U(0, context_noise)
    # how often each context kind is drawn: prefix (next frames, i2v), suffix (backward), ends (connect, loop),
    # random frames; a frame-causal model (attention=causal) only learns from prefixes and random frames
    context_kinds: list[float] = field(default_factory=lambda: [0.6, 0.1, 0.1, 0.2])
    # diffusion_forcing: one pass over the window, a noise level per frame and random context masks (every sampling
    # mode); teacher_forcing (frame-causal models, for DreamEnv and rollouts): every frame denoised from the clean
    # frames before it, in one pass over the window twice (clean + noisy), as a dreamed step is
    objective: str = "diffusion_forcing"
    # velocity (v = eps - x0, the loss on v) | delta (teacher_forcing only: the network predicts x0 - previous frame,
    # the loss on x0): "keep the last frame" is the zero output, as EDM's c_skip makes it (DIAMOND)
    prediction: str = "velocity"
    # this share of the generated frames is drawn at t = 1 exactly (pure noise), the level every sample starts from:
    # the logit-normal almost never reaches it (P(t > 0.95) ~ 0.5% at the recipe's shift), and a model never trained
    # there makes a poor first step (measured: next-frame PSNR 20.0 dB starting at t = 1, 22.5 dB at t = 0.95)
    p_pure_noise: float = 0.0
    # models with memory (model.memory): this share of frames trains without one (as at the start of a dream)
    p_drop_memory: float = 0.1
    # teacher_forcing: this share of windows has its context frames (after the first) replaced by the model's own
    # one-step predictions of them, the targets kept real (`own_context` in worldsim/train/train_dit.py), made in
    # `self_forcing_depth` passes, each from the last one's predictions (context frames up to that many steps deep
    # into the model's own rollout). A fine-tune (`init=`) takes both from its own command line, not the parent's
    self_forcing: float = 0.0
    self_forcing_depth: int = 1
    # teacher_forcing with delta prediction: add this weight x the pixel MSE (frames in [-1, 1]) of the predicted clean
    # frames decoded by the frozen VAE against the decoded targets, on `pixel_frames` frames per window at the highest
    # noise levels (where the one-step sampler draws): PSNR is measured on pixels, the flow loss on latents
    pixel_loss: float = 0.0
    pixel_frames: int = 2


def time_shift(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Move t towards 1 (more noise) by `shift` >= 1: t' = s t / (1 + (s - 1) t)."""
    return shift * t / (1 + (shift - 1) * t)


def euler_grid(steps: int, shift: float, top: float = 1.0) -> list[float]:
    """The noise levels an Euler sampler visits, from `top` down to 0 in `steps` steps, moved towards noise by
    `shift` (`time_shift`): what `sample`, DreamEnv and `worldsim distill`'s teacher all integrate over."""
    return time_shift(torch.linspace(top, 0.0, steps + 1), shift).tolist()


def token_count(shape: tuple[int, ...] | torch.Size, patch: int) -> int:
    """DiT tokens of latents shaped (B, T, C, h, w) cut into (1, patch, patch) patches."""
    return shape[1] * (shape[-2] // patch) * (shape[-1] // patch)


def shift_for(tokens: int, cfg: FlowConfig) -> float:
    return max(1.0, (tokens / cfg.shift_base_tokens) ** 0.5)


def pure_noise(t: torch.Tensor, cfg: FlowConfig, g: torch.Generator) -> torch.Tensor:
    """t with a share `cfg.p_pure_noise` of its entries set to 1 (no random draw at all when the share is 0, so runs
    without it draw exactly the noise they always drew)."""
    if cfg.p_pure_noise <= 0:
        return t
    return torch.where(torch.rand(t.shape, generator=g) < cfg.p_pure_noise, torch.ones_like(t), t)


def context_mask(b: int, t: int, cfg: FlowConfig, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B, T) bool, True = a clean context frame: none, a prefix, a suffix, first + last, or random frames."""
    mask = torch.zeros(b, t, dtype=torch.bool)
    if t < 2:
        return mask.to(device)
    use = torch.rand(b, generator=g) < cfg.p_context
    weights = torch.tensor(cfg.context_kinds, dtype=torch.float64)
    if weights.shape != (4,) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise InputError(f"flow.context_kinds must be 4 non-negative weights (prefix, suffix, ends, random), "
                         f"got {cfg.context_kinds}")
    kind = torch.multinomial(weights, b, replacement=True, generator=g)
    for i in range(b):
        if not use[i]:
            continue
        k = int(torch.randint(1, t, (1,), generator=g))
        if kind[i] == 0:
            mask[i, :k] = True  # prefix: image-to-video, extension, next-frame prediction
        elif kind[i] == 1:
            mask[i, t - k :] = True  # suffix: backward extension
        elif kind[i] == 2:
            mask[i, 0] = mask[i, -1] = True  # first and last: connect, loop
        else:
            mask[i] = torch.rand(t, generator=g) < 0.5
            mask[i, int(torch.randint(0, t, (1,), generator=g))] = False  # at least one frame to generate
    return mask.to(device)


def training_targets(x0: torch.Tensor, cfg: FlowConfig, g: torch.Generator, patch: int = 2
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """From clean latents x0 (B, T, C, h, w): x_t, t (B, T), the velocity target, and the loss mask (B, T)
    (frames to generate; context frames are inputs, not targets)."""
    b, nt = x0.shape[:2]
    dev = x0.device
    tokens = token_count(x0.shape, patch)
    u = torch.randn(b, nt, generator=g) * cfg.logit_std + cfg.logit_mean
    shared = torch.rand(b, generator=g) < cfg.p_shared_t
    u = torch.where(shared[:, None], u[:, :1].expand(b, nt), u)
    t = pure_noise(time_shift(torch.sigmoid(u), shift_for(tokens, cfg)), cfg, g).to(dev)
    ctx = context_mask(b, nt, cfg, g, dev)
    t = torch.where(ctx, torch.rand(b, nt, generator=g).to(dev) * cfg.context_noise, t)
    eps = torch.randn(x0.shape, generator=g).to(dev)
    tt = t[:, :, None, None, None]
    x_t = (1 - tt) * x0 + tt * eps
    return x_t, t, eps - x0, ~ctx


def teacher_targets(x0: torch.Tensor, cfg: FlowConfig, g: torch.Generator, patch: int = 2
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """From clean latents x0 (B, T, C, h, w), for `DiT.forward_teacher`: the context copy (x0 with a little noise,
    t ~ U(0, context_noise) per frame, as context frames get while sampling), its levels (B, T), x_t, t (B, T) from
    the logit-normal per frame, and the velocity target."""
    b, nt = x0.shape[:2]
    dev = x0.device
    u = torch.randn(b, nt, generator=g) * cfg.logit_std + cfg.logit_mean
    t = pure_noise(time_shift(torch.sigmoid(u), shift_for(token_count(x0.shape, patch), cfg)), cfg, g).to(dev)
    t_clean = (torch.rand(b, nt, generator=g) * cfg.context_noise).to(dev)
    eps = torch.randn(x0.shape, generator=g).to(dev)
    eps_clean = torch.randn(x0.shape, generator=g).to(dev)
    tt, tc = t[:, :, None, None, None], t_clean[:, :, None, None, None]
    clean = (1 - tc) * x0 + tc * eps_clean
    return clean, t_clean, (1 - tt) * x0 + tt * eps, t, eps - x0


Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample(velocity: Velocity, shape: tuple[int, ...], context: torch.Tensor | None, context_mask_: torch.Tensor | None,
           steps: int, g: torch.Generator, shift: float = 1.0, method: str = "euler", context_t: float = 0.02,
           start: torch.Tensor | None = None, strength: float = 1.0) -> torch.Tensor:
    """Integrate from noise (t = 1) to data (t = 0) for the frames not in `context_mask_`.

    Args:
        velocity: v(x_t, t) with t of shape (B, T).
        shape: (B, T, C, h, w).
        context: clean latents for the context frames (same shape), or None.
        context_mask_: (B, T) bool, True = context (kept, with `context_t` noise, as in training).
        steps: integration steps; method: "euler" or "heun" (2nd order, one more evaluation per step).
        start, strength: SDEdit: start from `start` noised to t = strength instead of pure noise.
    """
    if method not in ("euler", "heun"):
        raise InputError(f"sampler must be euler or heun, got {method!r}")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    b, nt = shape[:2]
    dev = context.device if context is not None else (start.device if start is not None else torch.device("cpu"))
    ctx = context_mask_ if context_mask_ is not None else torch.zeros(b, nt, dtype=torch.bool, device=dev)
    eps = torch.randn(shape, generator=g).to(dev)
    top = float(strength) if start is not None else 1.0
    grid = euler_grid(steps, shift, top)
    x = eps if start is None else (1 - grid[0]) * start + grid[0] * eps
    if context is not None:
        noisy_ctx = (1 - context_t) * context + context_t * torch.randn(shape, generator=g).to(dev)
    ctx5 = ctx[:, :, None, None, None]

    def v_at(x_: torch.Tensor, t_now: float) -> torch.Tensor:
        if context is not None:
            x_ = torch.where(ctx5, noisy_ctx, x_)
        t = torch.where(ctx, torch.full_like(ctx, context_t, dtype=torch.float32),
                        torch.full_like(ctx, t_now, dtype=torch.float32))
        return velocity(x_, t)

    for t_now, t_next in zip(grid[:-1], grid[1:]):
        v = v_at(x, t_now)
        x_euler = x + (t_next - t_now) * v
        if method == "heun" and t_next > 0:
            x = x + (t_next - t_now) * 0.5 * (v + v_at(x_euler, t_next))
        else:
            x = x_euler
    return torch.where(ctx5, context, x) if context is not None else x
