"""The video diffusion transformer: spacetime patches, 3D RoPE, adaLN-Zero, QK-norm, SDPA (docs/architecture.md s. 4).

Input: noisy latents x_t (B, T, C, h, w), a noise level per frame t (B, T) in [0, 1], and the conditioning:
per-frame actions (added to the per-frame timestep embedding, the Oasis pattern), text tokens through
cross-attention and a pooled text vector; optionally (`goal_map`) per-frame maps of where a tracked goal would
appear (worldsim/model/goal_map.py), embedded with the patches and drawn into each frame's base. Output: the
rectified-flow velocity, shaped like x_t.

Attention is `full` (all spacetime tokens attend to each other) or `factorized` (blocks alternate between
attention within a frame and causal attention across frames at each position, as in Latte/Open-Sora). Rotary
positions in (t, y, x) make any duration and size work without a position table.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from worldsim.errors import InputError
from worldsim.model.goal_map import CHANNELS as GOAL_CHANNELS
from worldsim.model.memory import MEMORY_EXTRA, RECALL_MARGIN, as_3x3, placement


class Bases(NamedTuple):
    """Each frame's base and where it came from (`DiT.frame_bases`)."""

    base: torch.Tensor  # (B, T, C, h, w)
    from_prev: torch.Tensor  # (B, T, 1, h, w) bool: the moved previous frame (else a recall from memory)
    steps: torch.Tensor  # (B, T, 3, 3) the warp of each frame's action (identity without one)


# width, depth, heads: tiny for CPU, S/B/L/XL as in DiT (Peebles & Xie 2023, table 1)
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 6, 4), "S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1152, 28, 16)}
# query frames per attention call in teacher-forced training (`Attention.teacher`; benchmarks/train_speed.py --teacher)
TEACHER_GROUP = 4


@dataclass
class DiTConfig:
    preset: str = "tiny"
    width: int | None = None  # overrides of the preset
    depth: int | None = None
    heads: int | None = None
    patch: int = 2  # spatial patch size over latents; 1 in time
    attention: str = "full"  # full | causal (full, frame-causal: enables the KV cache) | factorized
    mlp_ratio: float = 4.0
    rope_theta: float = 10000.0
    # each frame's tokens also see the previous frame's latents at the same place (frame stacking, as DIAMOND and
    # GameNGen feed past frames): copying what does not move is one linear map, so next-frame prediction learns fast
    prev_frame: bool = False
    # the previous frame, as each frame's base (stacked frame and delta prediction), is first moved by a learned
    # affine warp of the action that leads into the frame (an MLP of the action, zero at start: identity, "copy"):
    # a camera turn becomes a shift of the whole picture that attention over 8-pixel tokens would otherwise have to
    # build token by token (docs/world_model.md, The DiT; on in the presets, off for older checkpoints)
    warp: bool = False
    # pose-indexed memory (worldsim/model/memory.py): each frame's tokens also see the earlier frame that best shows
    # its view, moved there by the chained action warps, with coverage and distance-moved channels, and its base
    # takes each pixel from that recall where it needed the smaller move (needs `warp`). The value is how many
    # frames before each training window are read as recall candidates; 0 turns memory off
    memory: int = 0
    # goal maps (worldsim/model/goal_map.py): each frame also reads where a tracked goal (navigate's pillar) would
    # appear in it, painted on the latent grid, through its own zero-initialised patch embedding, and the goal is
    # drawn into the frame's base where the map covers; `goal_fov` is the camera's vertical field of view in degrees
    # and `goal_yaw` the action column that turns the camera (degrees, right for positive; -1: none), which moves the
    # goal between frames
    goal_map: bool = False
    goal_fov: float = 70.0
    goal_yaw: int = -1

    def resolved(self) -> tuple[int, int, int]:
        if self.preset not in PRESETS:
            raise InputError(f"unknown model preset {self.preset!r}; choose one of {list(PRESETS)}")
        w, d, h = PRESETS[self.preset]
        w, d, h = self.width or w, self.depth or d, self.heads or h
        if w % h or (w // h) % 2:
            raise InputError(f"width {w} / heads {h} must give an even head size (rotary positions)")
        if self.memory < 0 or (self.memory and not (self.warp and self.prev_frame)):
            raise InputError(f"model.memory={self.memory} needs model.warp=true and model.prev_frame=true "
                             "(memories are placed by the action warps), and must be >= 0")
        if self.attention not in ("full", "causal", "factorized"):
            raise InputError(f"attention must be full, causal or factorized, got {self.attention!r}")
        return w, d, h


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, C, h, w) -> (B, T, (h / p) (w / p), C p p): each token's pixels, channels outermost."""
    b, nt, c, h, w = x.shape
    tokens = x.reshape(b, nt, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    return tokens.reshape(b, nt, (h // p) * (w // p), c * p * p)


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (any shape) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * scale * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


@functools.lru_cache(maxsize=64)
def rope_3d(t: int, h: int, w: int, head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, ...]:
    """cos, sin (T*h*w, head_dim/2) for positions (t, y, x): a third of the rotation pairs per axis."""
    pairs = head_dim // 2
    per = [pairs - 2 * (pairs // 3), pairs // 3, pairs // 3]  # time gets the remainder
    grids = torch.meshgrid(torch.arange(t, device=device), torch.arange(h, device=device),
                           torch.arange(w, device=device), indexing="ij")
    angles = []
    for g, n in zip(grids, per):
        freqs = theta ** (-torch.arange(n, device=device, dtype=torch.float32) / max(n, 1))
        angles.append(g.reshape(-1, 1).float() * freqs)
    a = torch.cat(angles, dim=1)
    return a.cos(), a.sin()


@functools.lru_cache(maxsize=64)
def frame_causal_mask(tq: int, tk: int, n: int, device: torch.device) -> torch.Tensor:
    """(tq n, tk n) bool, True = may attend: the last tq of tk frames (n tokens each) see their own and earlier frames
    (Diffusion Forcing's causal video model; what lets clean context frames keep their keys and values)."""
    q = torch.arange(tk - tq, tk, device=device).repeat_interleave(n)
    k = torch.arange(tk, device=device).repeat_interleave(n)
    return k[None, :] <= q[:, None]


@functools.lru_cache(maxsize=16)
def teacher_mask(t: int, n: int, device: torch.device) -> torch.Tensor:
    """(2 t n, 2 t n) bool for `DiT.forward_teacher`: t clean frames then t noisy ones, n tokens each. Clean frame i
    sees clean frames <= i; noisy frame j sees clean frames < j and itself."""
    f = torch.arange(2 * t, device=device).repeat_interleave(n)
    time, noisy = f % t, f >= t
    q_time, q_noisy, k_time, k_noisy = time[:, None], noisy[:, None], time[None, :], noisy[None, :]
    clean_q = ~q_noisy & ~k_noisy & (k_time <= q_time)
    noisy_q = q_noisy & ((~k_noisy & (k_time < q_time)) | (k_noisy & (k_time == q_time)))
    return clean_q | noisy_q


@functools.lru_cache(maxsize=64)
def noisy_group_mask(a: int, e: int, n: int, device: torch.device) -> torch.Tensor | None:
    """(q, k) bool for noisy frames a .. e - 1 of `DiT.forward_teacher` (n tokens each), whose keys are the clean
    frames 0 .. e - 2 then the noisy frames a .. e - 1: noisy frame j sees the clean frames before j and itself.
    None for a single frame, which sees all of its keys."""
    if e - a == 1:
        return None
    q = torch.arange(a, e, device=device).repeat_interleave(n)[:, None]
    clean = torch.arange(e - 1, device=device).repeat_interleave(n)[None, :]
    noisy = torch.arange(a, e, device=device).repeat_interleave(n)[None, :]
    return torch.cat([clean < q, noisy == q], dim=1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (..., N, head_dim) rotated in (first half, second half) pairs; cos/sin (N, head_dim/2). In x's dtype."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class _RMSNormFn(torch.autograd.Function):
    """RMS norm with a hand-written backward, in the input's dtype with float32 sums. On CPU, F.rms_norm is a chain
    of elementwise ops run in float32 under autocast, and its autograd graph as many again: the QK-norms were about a
    quarter of the recipe's training step in a profile; this is 2-3x faster per call, a step 1.03-1.09x
    (benchmarks/train_speed.py --norm)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
        r = torch.rsqrt(norm.square_().div_(x.shape[-1]).add_(eps))
        unit = x * r.to(x.dtype)
        ctx.save_for_backward(unit, r, weight)
        return unit * weight.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        unit, r, weight = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            g = grad * weight.to(grad.dtype)
            mean = (g * unit).sum(-1, keepdim=True, dtype=torch.float32) / unit.shape[-1]
            dx = torch.addcmul(g, unit, -mean.to(g.dtype)) * r.to(g.dtype)
        if ctx.needs_input_grad[1]:
            dw = (grad * unit).sum(dim=tuple(range(grad.dim() - 1)), dtype=torch.float32).to(weight.dtype)
        return dx, dw, None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in the input dtype (under bf16 autocast F.rms_norm returned fp32, doubling the rotary pass's traffic)
        return _RMSNormFn.apply(x, self.weight, self.eps)


class Attention(nn.Module):
    """Multi-head attention with QK-norm (stable at any scale) and SDPA; self- or cross-attention."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, rope: tuple | None = None,
                mask: torch.Tensor | None = None, causal: bool = False, past: tuple | None = None,
                kv_out: list | None = None) -> torch.Tensor:
        """x (B, N, D) queries. `past`: keys and values (B, H, Np, hd) of earlier tokens placed before x's (the KV
        cache; `rope` then covers Np + N positions). `kv_out`: a list that receives x's own (k, v). Cached keys are
        stored before rotation so a sliding window can move them to new positions."""
        b, n, d = x.shape
        q, k, v = self.project(x, x if context is None else context)
        if kv_out is not None:
            kv_out.append((k, v))
        if past is not None:
            k, v = torch.cat([past[0].to(k.dtype), k], dim=2), torch.cat([past[1].to(v.dtype), v], dim=2)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos[-n:], sin[-n:]), apply_rope(k, cos, sin)
        if context is not None:
            # Cross-attention to a few text tokens: plain matmul + softmax. CPU SDPA's flash backward costs as much
            # for 40 keys as for 512 (benchmarks/train_speed.py profile), this is ~10x cheaper there.
            scores = (q @ k.transpose(-1, -2)).float() * self.head_dim**-0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            y = scores.softmax(dim=-1).to(v.dtype) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(b, n, d))

    def project(self, x: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normed queries of x (B, N, D) and normed keys and values of ctx (B, M, Dc), as (B, heads, N or M, hd)."""
        b = x.shape[0]
        q = self.q_norm(self.q(x).view(b, x.shape[1], self.heads, self.head_dim)).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, self.head_dim).unbind(2)
        return q, self.k_norm(k).transpose(1, 2), v.transpose(1, 2)

    def teacher(self, x: torch.Tensor, rope: tuple, frames: int, n: int, group: int | None = None) -> torch.Tensor:
        """Self-attention over `DiT.forward_teacher`'s sequence x (B, 2 T n, D): T clean frames, then T noisy ones,
        n tokens each; clean frame i sees clean frames <= i, noisy frame j the clean frames < j and itself (the
        mask `teacher_mask` draws). Computed `group` query frames at a time against only the keys they may see,
        instead of one call under the full mask: about a quarter of the dense work, and with group=1 no call needs
        a mask (every key of a one-frame call is visible). The same attention up to float rounding. group=0: one
        call under the full mask (the reference the others are tested and timed against); None: `TEACHER_GROUP`."""
        group = TEACHER_GROUP if group is None else group
        if group == 0:
            return self(x, rope=rope, mask=teacher_mask(frames, n, x.device))
        b, seq, d = x.shape
        q, k, v = self.project(x, x)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        m, dev = frames * n, x.device
        clean, noisy = [], []
        for a in range(0, frames, group):
            e = min(a + group, frames)
            mask = frame_causal_mask(e - a, e, n, dev) if e - a > 1 else None
            clean.append(F.scaled_dot_product_attention(q[:, :, a * n : e * n], k[:, :, : e * n], v[:, :, : e * n],
                                                        attn_mask=mask))
            keys = torch.cat([k[:, :, : (e - 1) * n], k[:, :, m + a * n : m + e * n]], dim=2)
            values = torch.cat([v[:, :, : (e - 1) * n], v[:, :, m + a * n : m + e * n]], dim=2)
            noisy.append(F.scaled_dot_product_attention(q[:, :, m + a * n : m + e * n], keys, values,
                                                        attn_mask=noisy_group_mask(a, e, n, dev)))
        y = torch.cat(clean + noisy, dim=2)
        return self.out(y.transpose(1, 2).reshape(b, seq, d))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (1 + scale) + shift, one fused kernel (elementwise passes dominate small models on CPU)."""
    return torch.addcmul(shift, x, 1 + scale)


class Block(nn.Module):
    """adaLN-Zero DiT block with text cross-attention. `kind`: full | causal (full, frame-causal) | spatial |
    temporal (causal, per position)."""

    def __init__(self, dim: int, heads: int, text_dim: int, mlp_ratio: float, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.cross = Attention(dim, heads, context_dim=text_dim)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)  # adaLN-Zero: the gated branches start closed (cross-attention is not gated)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None,
                rope: dict[str, tuple], past: tuple | None = None, kv_out: list | None = None,
                teacher: int = 0) -> torch.Tensor:
        # x: (B, T, N, D) tokens; c: (B, T, D) per-frame conditioning; text: (B, L, Dt); past: cached (k, v) of
        # earlier frames (causal blocks only); teacher: T' > 0 for `DiT.forward_teacher`'s sequence of T' clean then
        # T' noisy frames (T = 2 T'), attended as `Attention.teacher` says instead of frame-causally
        b, t, n, d = x.shape
        s1, g1, a1, s2, g2, a2 = (m[:, :, None] for m in self.ada(F.silu(c)).chunk(6, dim=-1))
        h = modulate(self.norm1(x), s1, g1)
        if self.kind == "full":
            h = self.attn(h.reshape(b, t * n, d), rope=rope["full"]).view(b, t, n, d)
        elif self.kind == "causal" and teacher:
            h = self.attn.teacher(h.reshape(b, t * n, d), rope["causal"], teacher, n).view(b, t, n, d)
        elif self.kind == "causal":
            tp = 0 if past is None else past[0].shape[2] // n
            mask = frame_causal_mask(t, tp + t, n, x.device) if t > 1 else None  # one frame sees everything
            h = self.attn(h.reshape(b, t * n, d), rope=rope["causal"], mask=mask, past=past, kv_out=kv_out)
            h = h.view(b, t, n, d)
        elif self.kind == "spatial":
            h = self.attn(h.reshape(b * t, n, d), rope=rope["spatial"]).view(b, t, n, d)
        else:  # causal in time, one sequence per spatial position
            h = h.transpose(1, 2).reshape(b * n, t, d)
            h = self.attn(h, rope=rope["temporal"], causal=True).view(b, n, t, d).transpose(1, 2)
        x = torch.addcmul(x, a1, h)  # gated residual, fused
        q = self.norm2(x).reshape(b, t * n, d)
        x = x + self.cross(q, context=text, mask=text_mask).view(b, t, n, d)
        return torch.addcmul(x, a2, self.mlp(modulate(self.norm3(x), s2, g2)))


class DiT(nn.Module):
    """Velocity network v(x_t, t, cond). See the module docstring for shapes."""

    def __init__(self, cfg: DiTConfig, latent_channels: int, action_dim: int, text_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        dim, depth, heads = cfg.resolved()
        self.dim, self.heads, self.patch, self.channels = dim, heads, cfg.patch, latent_channels
        stacked = 1 + (1 if cfg.prev_frame else 0)
        self.patch_in = nn.Linear((latent_channels * stacked + (latent_channels + MEMORY_EXTRA if cfg.memory else 0))
                                  * cfg.patch**2, dim)
        self.goal_in = None
        if cfg.goal_map:  # zeros at start: where no map covers, a new goal model behaves as its parent did
            self.goal_in = nn.Linear(GOAL_CHANNELS * cfg.patch**2, dim)
            nn.init.zeros_(self.goal_in.weight)
            nn.init.zeros_(self.goal_in.bias)
            # the goal's look in latents, drawn into each frame's base where its map covers (`frame_bases`); set
            # from data before training (worldsim/model/goal_map.py `goal_latent`)
            self.goal_latent = nn.Parameter(torch.zeros(latent_channels))
        self.t_mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.a_mlp = nn.Sequential(nn.Linear(max(action_dim, 1), dim), nn.SiLU(), nn.Linear(dim, dim))
        self.a_null = nn.Parameter(torch.zeros(dim))  # "no action" (first frame, CFG dropout)
        self.warp = None
        if cfg.warp:
            self.warp = nn.Sequential(nn.Linear(max(action_dim, 1), 64), nn.SiLU(), nn.Linear(64, 6))
            nn.init.zeros_(self.warp[2].weight)  # identity at start: the base is the previous frame itself
            nn.init.zeros_(self.warp[2].bias)
        self.text_pool = nn.Linear(text_dim, dim)
        kinds = [cfg.attention] * depth if cfg.attention != "factorized" else ["spatial", "temporal"] * (depth // 2) + (
            ["spatial"] if depth % 2 else [])
        self.kinds = sorted(set(kinds))
        self.blocks = nn.ModuleList(Block(dim, heads, text_dim, cfg.mlp_ratio, k) for k in kinds)
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, latent_channels * cfg.patch**2)
        for m in (self.ada_out, self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def condition(self, t: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor,
                  text_pooled: torch.Tensor) -> torch.Tensor:
        """Per-frame conditioning (B, T, D) = timestep + action (or the null action) + pooled text."""
        c = self.t_mlp(timestep_embedding(t, 256))
        a = self.a_mlp(actions)
        a = torch.where(action_mask[..., None], a, self.a_null.to(a.dtype))
        return c + a + self.text_pool(text_pooled)[:, None]

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor], past: list | None = None,
                kv_out: list | None = None, base: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C, h, w) noisy latents; t: (B, T); cond: actions (B, T, A) already aligned to frames (the action
        that led into each frame), action_mask (B, T) bool, text (B, L, Dt), text_mask (B, L) bool, text_pooled (B, Dt).
        Returns the velocity (B, T, C, h, w). With `prev_frame`, cond["prev"] (B, C, h, w), if given, is the frame
        before x's first (zeros otherwise, as for the first frame of a training window).

        KV cache (attention=causal only): `past` holds one (k, v) per block of clean earlier frames, which x's frames
        follow in time; `kv_out`, a list, receives one (k, v) per block of x's own tokens (to extend a cache)."""
        b, nt, ch, h, w = x.shape
        p = self.patch
        if h % p or w % p:
            raise InputError(f"latent size {h}x{w} is not divisible by the patch size {p}")
        if (past is not None or kv_out is not None) and self.cfg.attention != "causal":
            raise InputError(f"a KV cache needs attention=causal; this model's attention is {self.cfg.attention!r}")
        gh, gw = h // p, w // p
        tok = self._tokens(x, self._base(x, cond, base), self._memory(x, cond), self._goal(x, cond))  # (B, T, N, D)
        c = self.condition(t, cond["actions"], cond["action_mask"], cond["text_pooled"])
        hd = self.dim // self.heads
        tp = 0 if past is None else past[0][0].shape[2] // (gh * gw)  # cached frames before x's
        grids = {"full": (nt, gh, gw), "causal": (tp + nt, gh, gw), "spatial": (1, gh, gw), "temporal": (nt, 1, 1)}
        rope = {kind: rope_3d(*grids[kind], hd, self.cfg.rope_theta, x.device) for kind in self.kinds}
        text_mask = cond["text_mask"][:, None, None, :]  # (B, 1, 1, L): broadcast over heads and queries
        for i, blk in enumerate(self.blocks):
            block_kv: list | None = [] if kv_out is not None else None
            tok = blk(tok, c, cond["text"], text_mask, rope, past=None if past is None else past[i], kv_out=block_kv)
            if kv_out is not None:
                kv_out.append(block_kv[0])
        return self._head(tok, c, x.shape)

    @staticmethod
    def previous_frames(x: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """The frame before each frame of x (B, T, C, h, w): cond["prev"] (zeros if absent) for the first."""
        first = cond.get("prev")
        first = torch.zeros_like(x[:, 0]) if first is None else first.to(x.dtype)
        return torch.cat([first[:, None], x[:, :-1]], dim=1)

    def base_frames(self, x: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each frame's base (B, T, C, h, w): the frame before it (`previous_frames`), moved by the action-conditioned
        warp when the model has one (identity where a frame has no action: the first frame, CFG's null branch)."""
        return self.frame_bases(x, cond).base

    def frame_bases(self, x: torch.Tensor, cond: dict[str, torch.Tensor]) -> Bases:
        """`base_frames` with where each base came from: `Bases.from_prev` (B, T, 1, h, w) is True where a base
        pixel is the moved previous frame (not a recall from memory, worldsim/model/memory.py) and `Bases.steps`
        (B, T, 3, 3) each frame's warp (`step_affines`). Pixel rendering (worldsim/model/render.py) moves the
        previous frame's pixels by the same warp where the base is theirs."""
        return self._goal_base(self._bases(x, cond), cond)

    def _goal_base(self, bases: Bases, cond: dict[str, torch.Tensor]) -> Bases:
        """The goal drawn into the bases where its map covers (model.goal_map; worldsim/model/goal_map.py): base +
        cover (goal latent - base); a base pixel mostly drawn so no longer comes from the previous frame."""
        goal = cond.get("goal")
        if self.goal_in is None or goal is None:
            return bases
        cover = goal[:, :, :1].to(bases.base.dtype)  # (B, T, 1, h, w)
        base = bases.base + cover * (self.goal_latent.to(bases.base.dtype)[:, None, None] - bases.base)
        return Bases(base, bases.from_prev & (cover < 0.5), bases.steps)

    def _bases(self, x: torch.Tensor, cond: dict[str, torch.Tensor]) -> Bases:
        """`frame_bases` before the goal is drawn in."""
        prev = self.previous_frames(x, cond)
        b, nt, ch, h, w = prev.shape
        steps = self.step_affines(cond["actions"], cond["action_mask"])
        every = torch.ones(b, nt, 1, h, w, dtype=torch.bool, device=prev.device)
        if self.warp is None:
            return Bases(prev, every, steps)
        grid = F.affine_grid(steps[..., :2, :].reshape(b * nt, 2, 3), [b * nt, ch, h, w], align_corners=False)
        moved = F.grid_sample(prev.reshape(b * nt, ch, h, w).float(), grid, mode="bilinear", padding_mode="border",
                              align_corners=False)
        if not self.cfg.memory:
            return Bases(moved.reshape(b, nt, ch, h, w).to(prev.dtype), every, steps)
        # with memory, each pixel of the base comes from whichever source needed the smaller move to get there: the
        # recalled frame (worldsim/model/memory.py) or the moved previous frame (and from the recall wherever the
        # previous frame has nothing, its move having brought in the edge)
        mem = self._memory(x, cond).reshape(b * nt, ch + MEMORY_EXTRA, h, w).float()
        prev_cover, prev_moved = placement(grid)
        recall_cover, recall_moved = mem[:, ch : ch + 1] > 0.5, mem[:, ch + 1 : ch + 2]
        use = recall_cover & ((prev_cover < 0.5) | (recall_moved + RECALL_MARGIN < prev_moved))
        base = torch.where(use, mem[:, :ch], moved)
        return Bases(base.reshape(b, nt, ch, h, w).to(prev.dtype), ~use.reshape(b, nt, 1, h, w), steps)

    def step_affines(self, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """The warp of each frame's action (B, T, 3, 3): frame_j(p) ~ frame_{j-1}(A_j p); the identity where a frame
        has no action (or the model no warp)."""
        b, nt = action_mask.shape
        eye = torch.eye(3, device=action_mask.device).expand(b, nt, 3, 3)
        if self.warp is None:
            return eye.clone()
        a = actions.float()
        if self.cfg.memory:
            # an odd generator, exponentiated: the warp of -a is exactly the inverse of the warp of a, so a turn and
            # the turn back chain to the identity and memory finds the view it left (an MLP's two warps drifted
            # apart: recalled views 12 dB from the engine's on the reference recipe's look-away-and-back episodes)
            gen = (self.warp(a) - self.warp(-a)).float() * action_mask[..., None].float()
            return torch.linalg.matrix_exp(F.pad(gen.reshape(b, nt, 2, 3), (0, 0, 0, 1)))
        delta = self.warp(a) * action_mask[..., None].float()  # (B, T, 6)
        return as_3x3(torch.eye(2, 3, device=a.device) + delta.reshape(b, nt, 2, 3))

    def _base(self, x: torch.Tensor, cond: dict[str, torch.Tensor], base: torch.Tensor | None) -> torch.Tensor | None:
        """The stacked frames: `base` when the caller already computed it (WorldModel does, for delta prediction),
        else `base_frames`; None without frame stacking."""
        if not self.cfg.prev_frame:
            return None
        return base if base is not None else self.base_frames(x, cond)

    def _memory(self, x: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """cond["memory"] (B, T, C + 2, h, w) (worldsim/model/memory.py), zeros (nothing recalled) when absent; None
        for a model without memory."""
        if not self.cfg.memory:
            return None
        mem = cond.get("memory")
        if mem is None:
            b, nt, c, h, w = x.shape
            return x.new_zeros(b, nt, c + MEMORY_EXTRA, h, w)
        return mem

    def _goal(self, x: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """cond["goal"] (B, T, 2, h, w) (worldsim/model/goal_map.py), zeros (goal unknown) when absent; None for a
        model without goal maps."""
        if self.goal_in is None:
            return None
        goal = cond.get("goal")
        if goal is None:
            b, nt, _, h, w = x.shape
            return x.new_zeros(b, nt, GOAL_CHANNELS, h, w)
        return goal

    def _tokens(self, x: torch.Tensor, prev: torch.Tensor | None, mem: torch.Tensor | None = None,
                goal: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C, h, w) [+ the previous frames (B, T, C, h, w)] [+ the memories (B, T, C + 2, h, w)], stacked in
        channels -> tokens (B, T, N, D), plus the goal maps' own embedding (B, T, 2, h, w) where given."""
        p = self.patch
        parts = [x, *([prev.to(x.dtype)] if self.cfg.prev_frame else []),
                 *([mem.to(x.dtype)] if mem is not None else [])]
        xin = torch.cat(parts, dim=2) if len(parts) > 1 else x
        tokens = self.patch_in(patchify(xin, p))
        if goal is not None:
            tokens = tokens + self.goal_in(patchify(goal.to(x.dtype), p))
        return tokens

    def _head(self, tok: torch.Tensor, c: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Final adaLN layer and unpatchify: tokens (B, T, N, D) with conditioning c (B, T, D) -> (B, T, C, h, w)."""
        b, nt, ch, h, w = shape
        p = self.patch
        shift, scale = self.ada_out(F.silu(c)).chunk(2, dim=-1)
        out = self.out(modulate(self.norm_out(tok), shift[:, :, None], scale[:, :, None]))  # (B, T, N, C*p*p)
        out = out.view(b, nt, h // p, w // p, ch, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, nt, ch, h, w)
        return out.float()

    def forward_teacher(self, clean: torch.Tensor, t_clean: torch.Tensor, x: torch.Tensor, t: torch.Tensor,
                        cond: dict[str, torch.Tensor], base: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced next-frame training of a frame-causal model, every frame of a window at once.

        The sequence holds the window twice: its (lightly noised) clean frames `clean` (B, T, C, h, w) at levels
        `t_clean` (B, T), attending frame-causally among themselves as context frames do in DreamEnv, and the noisy
        frames `x` at levels `t`. Noisy frame j attends to the clean frames before j and to itself only, so each
        frame is denoised from a clean past, exactly as a dreamed step is (its KV cache holds clean frames), instead
        of from a partly noisy past as in diffusion forcing. Frame stacking (`prev_frame`) gives noisy frame j the
        clean frame j - 1. Returns the velocity of the noisy frames (B, T, C, h, w)."""
        if self.cfg.attention != "causal":
            raise InputError(f"teacher-forced training needs attention=causal; this model's is {self.cfg.attention!r}")
        nt, h, w = x.shape[1], x.shape[3], x.shape[4]
        gh, gw = h // self.patch, w // self.patch
        prev, mem = self._base(clean, cond, base), self._memory(clean, cond)
        goal = self._goal(x, cond)
        # (B, 2T, N, D): the clean frames' tokens, then the noisy frames'
        tok = torch.cat([self._tokens(clean, prev, mem, goal), self._tokens(x, prev, mem, goal)], dim=1)
        c_clean = self.condition(t_clean, cond["actions"], cond["action_mask"], cond["text_pooled"])
        c_noisy = self.condition(t, cond["actions"], cond["action_mask"], cond["text_pooled"])
        c = torch.cat([c_clean, c_noisy], dim=1)
        cos, sin = rope_3d(nt, gh, gw, self.dim // self.heads, self.cfg.rope_theta, x.device)
        rope = {"causal": (torch.cat([cos, cos]), torch.cat([sin, sin]))}  # both halves at times 0..T-1
        text_mask = cond["text_mask"][:, None, None, :]
        for blk in self.blocks:
            tok = blk(tok, c, cond["text"], text_mask, rope, teacher=nt)
        return self._head(tok[:, nt:], c_noisy, x.shape)
