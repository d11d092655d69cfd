"""The world model: text encoder + DiT, plus what turns a batch's captions and actions into conditioning.

    model = WorldModel(ModelSpec(...))
    cond = model.conditioning(texts, actions, drop_actions)     # text features, per-frame actions and their mask
    v = model(x_t, t, cond)                                      # (B, T', C, h, w): the DiT meets the flow here
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from worldsim.errors import InputError
from worldsim.model.dit import DiT, DiTConfig
from worldsim.model.memory import window_memory
from worldsim.model.text import HFTextEncoder, TextEncoder, Tokenizer


@dataclass
class TextConfig:
    encoder: str = "scratch"  # scratch (trained with the DiT) | hf (frozen, from a local folder)
    path: str | None = None  # local transformers model folder for encoder=hf
    width: int = 128
    depth: int = 2
    heads: int = 4
    max_len: int = 96
    max_vocab: int = 8192


@dataclass
class ModelSpec:
    """Everything needed to rebuild a WorldModel; saved in every checkpoint."""

    dit: DiTConfig = field(default_factory=DiTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    vocab: list[str] = field(default_factory=list)
    latent_channels: int = 8
    temporal: int = 1  # VAE temporal factor: actions of `temporal` frames per latent frame
    action_dim: int = 0
    action_scale: list[float] = field(default_factory=list)
    # what the DiT's output means: `velocity` (rectified flow's v = eps - x0), or `delta`: the clean frame's change
    # from the previous (clean context) frame, x0 = prev + delta. A zero output is then "copy the last frame", where
    # a fresh model starts and from which training only has to learn the motion (`flow.prediction`)
    prediction: str = "velocity"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(**{**d, "dit": DiTConfig(**d["dit"]), "text": TextConfig(**d["text"])})


class WorldModel(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        t = spec.text
        if t.encoder == "scratch":
            self.tokenizer = Tokenizer(spec.vocab, t.max_len)
            self.text = TextEncoder(len(spec.vocab), t.width, t.depth, t.heads, t.max_len)
            text_dim = t.width
        elif t.encoder == "hf":
            if not t.path:
                raise InputError("text.encoder=hf needs text.path=LOCAL_MODEL_DIR")
            self.tokenizer = None
            self.hf = [HFTextEncoder(t.path, t.max_len)]  # a list: frozen, kept out of the state dict
            text_dim = self.hf[0].width
        else:
            raise InputError(f"text.encoder must be scratch or hf, got {t.encoder!r}")
        self.dit = DiT(spec.dit, spec.latent_channels, spec.action_dim * spec.temporal, text_dim)
        self.register_buffer("action_scale", torch.tensor(spec.action_scale or [1.0] * spec.action_dim))

    def text_features(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (B, L, Dt), mask (B, L), pooled (B, Dt)) of a list of captions ("" = unconditional)."""
        dev = self.action_scale.device
        if self.tokenizer is None:
            self.hf[0].model.to(dev)
            return self.hf[0].encode_texts(texts, dev)
        ids, mask = self.tokenizer(texts)
        h, pooled = self.text(ids.to(dev), mask.to(dev))
        return h, mask.to(dev), pooled

    def frame_actions(self, actions: torch.Tensor, use_actions: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored actions (B, F, A) (actions[f] taken after frame f) -> the action that led *into* each latent frame,
        (B, F / k, A k) with k = the VAE's temporal factor, and a mask (B, F / k): False where there is none (the
        first frame) or where `use_actions` (B,) is False (actions dropped for classifier-free guidance)."""
        b, f, a = actions.shape
        k = self.spec.temporal
        scaled = actions / self.action_scale
        into = torch.cat([torch.zeros_like(scaled[:, :1]), scaled[:, :-1]], dim=1)  # into[f] = actions[f - 1]
        grouped = into.reshape(b, f // k, k * a)
        mask = torch.ones(b, f // k, dtype=torch.bool, device=actions.device)
        if k == 1:
            mask[:, 0] = False
        if use_actions is not None:
            mask &= use_actions[:, None]
        return grouped, mask

    def conditioning(self, texts: list[str], actions: torch.Tensor, use_actions: torch.Tensor | None = None,
                     skip: int = 0) -> dict[str, torch.Tensor]:
        """Text features and per-frame actions. `skip`: the actions (B, skip + F, A) start `skip` frames before the
        frames being conditioned, which then get the action that led into their first frame too (that frame's
        previous one goes in cond["prev"])."""
        tokens, tmask, pooled = self.text_features(texts)
        acts, amask = self.frame_actions(actions, use_actions)
        acts, amask = acts[:, skip:], amask[:, skip:]
        return {"text": tokens, "text_mask": tmask, "text_pooled": pooled, "actions": acts, "action_mask": amask}

    @torch.no_grad()
    def memory_for(self, bank: torch.Tensor, actions: torch.Tensor, first: int, valid: torch.Tensor | None = None,
                   chosen: list | None = None) -> torch.Tensor:
        """Memories (worldsim/model/memory.py) of frames first .. F - 1 of a sequence whose stored-aligned actions
        are `actions` (B, F, A) and whose frames 0 .. L - 1 are the latents `bank` (B, L, C, h, w), L <= F (a
        target may be the frame being drawn). `valid` (B, L): which bank frames exist. Returns (B, F - first, C + 2,
        h, w). Poses come from the true actions, never dropped for guidance: memory is part of the state. `chosen`:
        see `window_memory`."""
        acts, mask = self.frame_actions(actions)
        if valid is not None:  # an action into a frame after padding leads from nothing: no step
            mask = mask & torch.cat([valid[:, :1], valid[:, :-1] & valid[:, 1:],
                                     valid.new_ones(valid.shape[0], actions.shape[1] - valid.shape[1])], dim=1)
        steps = self.dit.step_affines(acts.float(), mask)
        return window_memory(bank.float(), steps, first, valid, chosen)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor], past: list | None = None,
                kv_out: list | None = None, clean: torch.Tensor | None = None, t_clean: torch.Tensor | None = None,
                x0: bool = False) -> torch.Tensor:
        """The velocity of x_t (B, T, C, h, w) at levels t (B, T), or with `x0=True` the clean frames it points to
        (x0 = x_t - t v). With `clean` and `t_clean`: teacher-forced, each frame from the clean frames before it
        (`DiT.forward_teacher`); through forward so DDP and compile see it."""
        # each frame's base (the frame before it, clean in teacher forcing, moved by the action warp), computed once
        # for both the stacked tokens and delta prediction
        delta = self.spec.prediction != "velocity"
        base = self.dit.base_frames(clean if clean is not None else x_t, cond) \
            if delta or self.dit.cfg.prev_frame else None
        if clean is not None:
            out = self.dit.forward_teacher(clean, t_clean, x_t, t, cond, base=base)
        else:
            out = self.dit(x_t, t, cond, past=past, kv_out=kv_out, base=base)
        tt = t[:, :, None, None, None].to(out.dtype)
        if not delta:
            return x_t - tt * out if x0 else out
        # delta: frame j's base is the frame before it, clean (its context copy), or cond["prev"] for the first,
        # moved by the action-conditioned warp when the model has one (DiT.base_frames)
        x0_hat = base.float() + out
        # v = (x_t - x0) / t; t > 0 wherever a velocity is used (the sampler never evaluates at t = 0)
        return x0_hat if x0 else (x_t - x0_hat) / tt.clamp_min(1e-3)
