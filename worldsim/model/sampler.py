"""Sampling from a trained world model: one primitive (generate a window with some frames given) and the modes.

    s = WorldSampler.load("runs/dit")                      # a run directory or one checkpoint
    video = s.t2v("a snowy forest at night", frames=16)    # (F, H, W, 3) uint8
    video = s.rollout(context_frames, actions)             # frames from a context and an action sequence
    s.write_video(video, "out.mp4", prompt=...)            # MP4 (+ JSON provenance beside it)

Every mode chooses which latent frames are clean context (docs/architecture.md section 4): t2v none, i2v the first,
extend a prefix (or a suffix backwards), loop and connect both ends, edit (SDEdit) starts from a noised video.
Videos longer than the trained window are made window by window, each new window conditioned on the last frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.flow import FlowConfig, sample, shift_for, token_count
from worldsim.model.frames import to_model, to_uint8
from worldsim.model.memory import MEMORY_BANK
from worldsim.model.render import Source, carry_frames, check_render
from worldsim.model.vae import VAEConfig, VideoVAE
from worldsim.model.world_model import ModelSpec, WorldModel
from worldsim.provenance import GENERATED, sign


def check_guidance(**scales: float) -> None:
    """Classifier-free guidance scales must be finite and >= 0: 1 is off (the conditional prediction alone), 0 the
    unconditional one, above 1 pushes away from it (`cfg_text=nan` once gave black frames and exit 0)."""
    import math

    for name, value in scales.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise InputError(f"{name}={value} must be a finite number >= 0 (1 = no guidance, 0 = unconditional, "
                             f"above 1 = stronger)")


def dream_steps_for(flow: FlowConfig) -> int:
    """Euler steps per dreamed frame by default: a model trained at t = 1 (`flow.p_pure_noise`) returns its estimate
    of the next frame's mean in one step, the best PSNR measured (docs/world_model.md); others need a few."""
    return 1 if flow.p_pure_noise > 0 else 4


def find_student(teacher: str | Path) -> Path | None:
    """The newest checkpoint of `<run dir>/student` when `worldsim distill` made it from exactly this checkpoint
    (its recorded teacher digest), else None: DreamEnv then dreams with the teacher itself."""
    ck = C.resolve(teacher)
    found = C.latest(C.run_dir(ck) / "student")
    if found is None:
        return None
    told = C.load_meta(found).get("teacher", {})
    return found if told.get("digest") == C.digest(ck) else None


class WorldSampler:
    def __init__(self, model: WorldModel, vae: VideoVAE, meta: dict[str, Any], digest: str,
                 device: torch.device) -> None:
        self.model, self.vae, self.meta, self.digest, self.device = model, vae, meta, digest, device
        self.light: Any = None  # a distilled light decoder (`use_decoder`); None: the VAE's own decoder
        self.k = model.spec.temporal
        self.frames = int(meta["frames"])  # trained window, in frames
        self.window = self.frames // self.k  # in latent frames
        self.fps = int(meta.get("fps", 20))
        self.height, self.width = int(meta["height"]), int(meta["width"])
        self.action_dim = model.spec.action_dim
        self.flow = FlowConfig(**meta["train"]["flow"])
        # a teacher-forced model learned each frame from a clean past: it draws one frame at a time
        self.one_at_a_time = self.flow.objective == "teacher_forcing"
        self.dream_steps = dream_steps_for(self.flow)
        # how rollouts and DreamEnv turn latents into pixels (worldsim/model/render.py): pixel carry where it applies
        self.render = "carry"

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True,
             decoder: str = "full") -> WorldSampler:
        """A trained world model. `decoder`: "full" (the VAE's decoder), "light" (the one `worldsim
        distill-decoder` made for it, `<run>/decoder`; an error when there is none), "auto" (light when there is
        one, else full), or the path of a light decoder run or checkpoint."""
        ck = C.resolve(path)
        meta = C.load_meta(ck, kind="dit")
        dev = torch.device(device)
        model = WorldModel(ModelSpec.from_dict(meta["spec"]))
        C.load_into(model, ck, "ema" if use_ema else "model")
        vae = VideoVAE(VAEConfig(**meta["vae"]["config"]))
        vae.load_state_dict(C.load_tensors(ck, "vae"))
        sampler = cls(model.to(dev).eval(), vae.to(dev).eval(), meta, C.digest(ck), dev)
        sampler.use_decoder(decoder, ck)
        return sampler

    def use_decoder(self, decoder: str, ckpt: str | Path) -> None:
        """Decode with the full VAE decoder or a light one (see `load`)."""
        from worldsim.model.light_decoder import find_decoder, load_decoder

        if decoder == "full":
            self.light = None
            return
        found = find_decoder(ckpt) if decoder in ("auto", "light") else Path(decoder)
        if found is None:
            if decoder == "light":
                raise InputError(f"no light decoder for {ckpt} (make one: worldsim distill-decoder ckpt={ckpt} "
                                 "store=...)")
            self.light = None
            return
        light = load_decoder(found, self.device)
        if light.meta.get("vae_digest") != self.meta.get("vae", {}).get("digest"):
            raise InputError(f"the light decoder {found} was distilled from another VAE than {ckpt}'s")
        self.light = light

    @property
    def decoder_name(self) -> str:
        return "full" if self.light is None else f"light ({self.light.meta['digest'][:12]})"

    # -- helpers ---------------------------------------------------------------------------------------------
    def example_prompt(self) -> str:
        """A short prompt from the training data (recorded in the checkpoint)."""
        prompts = self.meta.get("example_prompts") or [""]
        return prompts[0]

    def check_prompt(self, prompt: str) -> None:
        """Refuse (InputError) a non-empty prompt of which the model knows no word: it would be ignored."""
        if prompt and self.model.tokenizer is not None and self.model.tokenizer.known(prompt) == 0:
            raise InputError(f"no word of the prompt {prompt!r} is in the model's vocabulary "
                             f"(it knows words such as: {', '.join(self.model.spec.vocab[3:15])})")

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (F, H, W, 3), F a multiple of the VAE's temporal factor -> latents (1, F / k, C, h, w)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must be (F, H, W, 3) uint8, got shape {frames.shape}")
        if len(frames) % self.k:
            raise InputError(f"{len(frames)} frames is not a multiple of the VAE's temporal factor {self.k}")
        return self.vae.encode(to_model(frames)[None].to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        return to_uint8(self.decode_frames(z)[0])

    @torch.no_grad()
    def decode_frames(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, T', C, h, w) -> frames (B, T, 3, H, W) in [-1, 1], with the light decoder when one
        is in use (per-frame VAEs only)."""
        if self.light is None or self.k != 1:
            return self.vae.decode(z)
        b, t = z.shape[:2]
        return self.light(z.flatten(0, 1)).unflatten(0, (b, t))

    def _check_size(self, height: int, width: int) -> tuple[int, int]:
        f = self.vae.cfg.spatial * self.model.spec.dit.patch
        if height % f or width % f or height <= 0 or width <= 0:
            raise InputError(f"height and width must be positive multiples of {f}, got {height}x{width}")
        return height // self.vae.cfg.spatial, width // self.vae.cfg.spatial

    def _actions(self, actions: np.ndarray | None, n_frames: int) -> np.ndarray:
        if actions is None:
            return np.zeros((n_frames, self.action_dim), np.float32)
        a = np.asarray(actions, np.float32)
        if a.ndim != 2 or a.shape[1] != self.action_dim:
            raise InputError(f"actions must be (frames, {self.action_dim}), got shape {a.shape}")
        if len(a) < n_frames:
            a = np.concatenate([a, np.zeros((n_frames - len(a), self.action_dim), np.float32)])
        return a[:n_frames]

    # -- the primitive -------------------------------------------------------------------------------------
    @torch.no_grad()
    def fill_window(self, latents: torch.Tensor, given: torch.Tensor, prompt: str, actions: np.ndarray, steps: int,
                    seed: int, cfg_text: float = 1.0, cfg_actions: float = 1.0, method: str = "euler",
                    strength: float | None = None, history: dict[str, Any] | None = None,
                    trace: list | None = None) -> torch.Tensor:
        """Fill the latent frames of one window that are not `given`.

        latents: (1, T', C, h, w) with the given frames filled in (others ignored, or the SDEdit start);
        given: (T',) bool; actions: (T' k, A) stored-aligned (actions[f] taken after frame f). `history`, for a model
        with memory (`window_history`): the frame before the window with the action out of it, and every frame's
        recalled memory. `trace`, a list, receives for each frame filled its `render.Source` (what pixel carry needs,
        worldsim/model/render.py; the recall's index is the frame's in the trajectory `history` was made from)."""
        check_guidance(cfg_text=cfg_text, cfg_actions=cfg_actions)
        skip = 0
        if history is not None and history.get("prev") is not None:
            actions, skip = np.concatenate([history["action"][None], actions]), 1
        acts = torch.from_numpy(actions).to(self.device)[None]
        # classifier-free guidance branches, batched in one call: (text, actions), ("", actions), (text, none)
        texts, with_actions, scales = [prompt], [True], []
        if cfg_text != 1.0:
            texts, with_actions, scales = [*texts, ""], [*with_actions, True], [*scales, cfg_text]
        if cfg_actions != 1.0:
            texts, with_actions, scales = [*texts, prompt], [*with_actions, False], [*scales, cfg_actions]
        m = len(texts)
        batched = self.model.conditioning(texts, acts.repeat(m, 1, 1), torch.tensor(with_actions, device=self.device),
                                          skip=skip)
        for key in ("prev", "memory"):
            if history is not None and history.get(key) is not None:
                batched[key] = history[key].repeat(m, *[1] * (history[key].dim() - 1))

        seen: list[torch.Tensor] = []  # the latest input, its context frames noised as the model saw them

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            seen[:] = [x]
            v = self.model(x.repeat(m, 1, 1, 1, 1), t.repeat(m, 1), batched).float()
            full = v[:1]
            for j, s in enumerate(scales, start=1):  # v = v_c + sum_i (s_i - 1) (v_c - v_without_i)
                full = full + (s - 1.0) * (v[:1] - v[j : j + 1])
            return full

        g = torch.Generator().manual_seed(int(seed))
        tokens = token_count(latents.shape, self.model.spec.dit.patch)
        mask = given[None].to(self.device)
        start = latents if strength is not None else None
        out = sample(velocity, tuple(latents.shape), latents if bool(given.any()) else None,
                     mask if bool(given.any()) else None, steps, g, shift=shift_for(tokens, self.flow),
                     method=method, start=start, strength=strength if strength is not None else 1.0)
        if trace is not None:  # each filled frame's base as the model saw it (from the noised context before it)
            bases = self.model.dit.frame_bases(seen[0], {k: v[:1] for k, v in batched.items()})
            recalls = (history or {}).get("recalls") or [(-1, torch.eye(3, device=self.device))] * out.shape[1]
            trace.extend(Source(bases.base[:, j].float(), bases.from_prev[:, j], bases.steps[:, j].float(),
                                torch.tensor([recalls[j][0]], device=self.device), recalls[j][1][None].float())
                         for j in range(out.shape[1]) if not bool(given[j]))
        return out

    @torch.no_grad()
    def continue_latents(self, z: torch.Tensor, new: int, prompt: str, actions: np.ndarray, **kw: Any) -> torch.Tensor:
        """Append `new` latent frames to z (1, L, ...) window by window; actions cover all (L + new) k frames."""
        while new > 0:
            n_ctx = min(z.shape[1], self.window - 1) if self.window > 1 else 0
            add = 1 if self.one_at_a_time else min(new, self.window - n_ctx)
            ctx = z[:, z.shape[1] - n_ctx :]
            win = torch.cat([ctx, torch.zeros_like(z[:, :1]).repeat(1, add, 1, 1, 1)], dim=1)
            given = torch.zeros(n_ctx + add, dtype=torch.bool)
            given[:n_ctx] = True
            f0 = (z.shape[1] - n_ctx) * self.k
            hist = self.window_history(z, f0, n_ctx + add, actions) if self.model.spec.dit.memory else None
            out = self.fill_window(win, given, prompt, actions[f0 : f0 + (n_ctx + add) * self.k], history=hist, **kw)
            z = torch.cat([z, out[:, n_ctx:]], dim=1)
            kw["seed"] = kw.get("seed", 0) + 1
            new -= add
        return z

    def window_history(self, z: torch.Tensor, first: int, count: int, actions: np.ndarray) -> dict[str, Any]:
        """What a model with memory sees beyond a window of frames first .. first + count - 1 (per-frame VAE):
        the latent frame before it and the action out of it, and each window frame's memory recalled from up to
        MEMORY_BANK earlier frames of z (1, L, C, h, w); actions are stored-aligned over all frames."""
        b0 = max(0, first - MEMORY_BANK)
        end = first + count
        acts = torch.from_numpy(np.asarray(actions[b0:end], np.float32)).to(self.device)[None]
        chosen: list = []
        memory = self.model.memory_for(z[:, b0 : min(end, z.shape[1])], acts, first - b0, chosen=chosen)
        prev = z[:, first - 1] if first > 0 else None
        # each window frame's recall: the index in z of the frame recalled (-1: none) and the map into it
        recalls = [(b0 + int(c.best[0]) if bool(c.found[0]) else -1, c.map[0]) for c in chosen]
        return {"prev": prev, "action": np.asarray(actions[first - 1], np.float32) if first > 0 else None,
                "memory": memory, "recalls": recalls}

    # -- modes ----------------------------------------------------------------------------------------------
    def t2v(self, prompt: str, frames: int = 0, height: int = 0, width: int = 0, steps: int = 16, seed: int = 0,
            actions: np.ndarray | None = None, **kw: Any) -> np.ndarray:
        """Text to video: `frames` frames (default: the trained window) at any supported size."""
        frames = frames or self.frames
        h, w = self._check_size(height or self.height, width or self.width)
        n = -(-frames // self.k)
        first = 1 if self.one_at_a_time else min(n, self.window)
        acts = self._actions(actions, n * self.k)
        z = torch.zeros(1, first, self.model.spec.latent_channels, h, w, device=self.device)
        z = self.fill_window(z, torch.zeros(first, dtype=torch.bool), prompt, acts[: first * self.k], steps, seed, **kw)
        z = self.continue_latents(z, n - first, prompt, acts, steps=steps, seed=seed + 1, **kw)
        return self.decode(z)[:frames]

    def t2i(self, prompt: str, **kw: Any) -> np.ndarray:
        """Text to image: one frame (H, W, 3)."""
        return self.t2v(prompt, frames=1, **kw)[0]

    def extend(self, video: np.ndarray, frames: int, prompt: str = "", direction: str = "forward",
               actions: np.ndarray | None = None, steps: int = 16, seed: int = 0, **kw: Any) -> np.ndarray:
        """Continue a clip by `frames` frames forward, or backward (frames that lead into it). Returns the whole clip.
        i2v is extend() from one image."""
        if direction not in ("forward", "backward"):
            raise InputError(f"direction must be forward or backward, got {direction!r}")
        video = np.asarray(video)
        self._check_size(*video.shape[1:3])
        if frames < 0:
            raise InputError(f"frames must be >= 0, got {frames}")
        if len(video) < self.k:  # a single image with a temporal VAE: repeat it to one latent frame
            video = np.concatenate([np.repeat(video[:1], self.k - len(video) + 1, axis=0), video[1:]])
        extra = len(video) % self.k  # a temporal VAE encodes groups of k frames: the context is the nearest groups
        new = -(-frames // self.k)
        if new == 0:  # nothing to add (i2v of one frame); a temporal VAE cannot decode zero latent frames
            return video
        if direction == "forward":
            z = self.encode(video[extra:])
            acts = self._actions(actions, (z.shape[1] + new) * self.k)
            z = self.continue_latents(z, new, prompt, acts, steps=steps, seed=seed, **kw)
            return np.concatenate([video, self.decode(z[:, z.shape[1] - new :])[:frames]])
        made = self._backward(self.encode(video[: len(video) - extra]), new, prompt, steps, seed, **kw)
        return np.concatenate([self.decode(made)[new * self.k - frames :], video])

    def _backward(self, z: torch.Tensor, new: int, prompt: str, steps: int, seed: int, **kw: Any) -> torch.Tensor:
        """`new` latent frames that lead into z, window by window with the earliest frames as a suffix context."""
        made = z[:, :0]
        while new > 0:
            n_ctx = min(z.shape[1], self.window - 1) if self.window > 1 else 0
            add = 1 if self.one_at_a_time else min(new, self.window - n_ctx)
            win = torch.cat([torch.zeros_like(z[:, :1]).repeat(1, add, 1, 1, 1), z[:, :n_ctx]], dim=1)
            given = torch.zeros(add + n_ctx, dtype=torch.bool)
            given[add:] = True
            acts = np.zeros(((add + n_ctx) * self.k, self.action_dim), np.float32)
            out = self.fill_window(win, given, prompt, acts, steps, seed, **kw)
            made = torch.cat([out[:, :add], made], dim=1)
            z = torch.cat([out[:, :add], z], dim=1)
            seed, new = seed + 1, new - add
        return made

    def i2v(self, image: np.ndarray, frames: int, prompt: str = "", **kw: Any) -> np.ndarray:
        """Animate an image (H, W, 3): the image is the first frame."""
        return self.extend(np.asarray(image)[None], frames - 1, prompt, **kw)[: max(frames, 1)]

    def connect(self, clip_a: np.ndarray, clip_b: np.ndarray, frames: int, prompt: str = "", steps: int = 16,
                seed: int = 0, **kw: Any) -> np.ndarray:
        """`frames` transition frames from the end of clip_a to the start of clip_b (within one window)."""
        za = self.encode(np.asarray(clip_a)[-self.k :])
        zb = self.encode(np.asarray(clip_b)[: self.k])
        gap = -(-frames // self.k)
        if gap + 2 > self.window:
            raise InputError(f"connect makes at most {(self.window - 2) * self.k} frames with this model "
                             f"(window {self.frames} frames); asked for {frames}")
        win = torch.cat([za, torch.zeros_like(za).repeat(1, gap, 1, 1, 1), zb], dim=1)
        given = torch.zeros(gap + 2, dtype=torch.bool)
        given[0] = given[-1] = True
        acts = np.zeros(((gap + 2) * self.k, self.action_dim), np.float32)
        out = self.fill_window(win, given, prompt, acts, steps, seed, **kw)
        return self.decode(out[:, 1:-1])[:frames]

    def loop(self, prompt: str, frames: int = 0, steps: int = 16, seed: int = 0, **kw: Any) -> np.ndarray:
        """A seamless loop: the frame after the last is the first (at most one window long)."""
        frames = frames or self.frames - self.k
        first = self.t2v(prompt, frames=self.k, steps=steps, seed=seed, **kw)
        return np.concatenate([first, self.connect(first, first, frames - self.k, prompt, steps, seed + 1, **kw)])

    def edit(self, video: np.ndarray, prompt: str, strength: float = 0.6, steps: int = 16, seed: int = 0,
             **kw: Any) -> np.ndarray:
        """SDEdit: noise the video to t = strength and denoise it under the new prompt, window by window."""
        if not 0.0 < strength <= 1.0:
            raise InputError(f"strength must be in (0, 1], got {strength}")
        video = np.asarray(video)
        pad = -len(video) % self.k  # a temporal VAE encodes groups of k frames: repeat the last frame, trim after
        z = self.encode(np.concatenate([video, np.repeat(video[-1:], pad, axis=0)]) if pad else video)
        outs = []
        for a in range(0, z.shape[1], self.window):
            part = z[:, a : a + self.window]
            acts = np.zeros((part.shape[1] * self.k, self.action_dim), np.float32)
            outs.append(self.fill_window(part, torch.zeros(part.shape[1], dtype=torch.bool), prompt, acts, steps,
                                    seed + a, strength=strength, **kw))
        return self.decode(torch.cat(outs, dim=1))[: len(video)]

    @property
    def can_carry(self) -> bool:
        """Whether this model's frames can be rendered with pixel carry (worldsim/model/render.py): a per-frame VAE
        and a model that draws one frame at a time as a change to its base (`flow.prediction=delta`)."""
        return self.k == 1 and self.one_at_a_time and self.model.spec.prediction == "delta"

    def carries(self, render: str | None = None) -> bool:
        """Whether frames rendered as `render` (default `self.render`) use pixel carry: asked for, and possible."""
        return check_render(self.render if render is None else render) == "carry" and self.can_carry

    def rollout(self, context: np.ndarray, actions: np.ndarray, prompt: str = "", steps: int = 8, seed: int = 0,
                render: str | None = None, **kw: Any) -> np.ndarray:
        """Frames that follow `context` (F0, H, W, 3) under `actions` (N, A), stored-aligned: actions[f] is taken
        after frame f, so actions[F0 - 1 :] drive the new frames. Returns the F0 + (N - F0 + 1) frames. `render`:
        "carry" (pixel carry where the model can, worldsim/model/render.py) or "latent" (the latents decoded);
        default `self.render`."""
        render = check_render(self.render if render is None else render)
        return self.rollout_renders(context, actions, (render,), prompt, steps, seed, **kw)[render]

    def rollout_renders(self, context: np.ndarray, actions: np.ndarray, renders: tuple[str, ...], prompt: str = "",
                        steps: int = 8, seed: int = 0, **kw: Any) -> dict[str, np.ndarray]:
        """`rollout` rendered each way in `renders` from one run of the model: {render: frames}."""
        context = np.asarray(context)
        a = np.asarray(actions, np.float32)
        if a.ndim != 2 or a.shape[1] != self.action_dim:
            raise InputError(f"actions must be (N, {self.action_dim}), got shape {a.shape}")
        usable = len(context) - len(context) % self.k
        if usable == 0:
            raise InputError(f"rollout needs at least {self.k} context frame(s)")
        new = len(a) - usable + 1
        if new <= 0:
            raise InputError(f"{len(a)} actions do not reach past the {usable} context frames")
        z = self.encode(context[:usable])
        n_new = -(-new // self.k)
        acts = self._actions(a, (z.shape[1] + n_new) * self.k)
        trace: list | None = [] if any(self.carries(r) for r in renders) else None
        z = self.continue_latents(z, n_new, prompt, acts, steps=steps, seed=seed, trace=trace, **kw)
        made = z[:, z.shape[1] - n_new :]
        decoded = self.decode_frames(made)[0]
        out = {}
        for r in renders:
            pix = carry_frames(to_model(context[:usable]).to(self.device), decoded, made[0], trace) \
                if self.carries(r) else decoded
            out[r] = np.concatenate([context[:usable], to_uint8(pix)[:new]])
        return out

    # -- output ---------------------------------------------------------------------------------------------
    def provenance(self, **extra: Any) -> dict[str, Any]:
        out = {"checkpoint": self.meta.get("step"), "checkpoint_digest": self.digest,
               "stores": [s["digest"] for s in self.meta.get("stores", [])], **extra}
        if self.light is not None:
            out["light_decoder_digest"] = self.light.meta["digest"]
        if self.meta.get("teacher"):  # a one-step student of worldsim distill
            out["teacher_digest"] = self.meta["teacher"]["digest"]
        if self.meta.get("init"):  # fine-tuned (worldsim train init=): the model it started from and its data
            out["init_digest"] = self.meta["init"]["digest"]
            out["init_stores"] = [s["digest"] for s in self.meta["init"].get("stores", [])]
        return out

    def write_video(self, frames: np.ndarray, path: str | Path, source: str = GENERATED, **extra: Any) -> Path:
        """An MP4 (or .npy frames) plus `<path>.json` with provenance (checkpoint digest, prompt, seed, ...); the MP4
        carries the same provenance in a signed C2PA manifest (worldsim/provenance.py) whose digital source type is
        `source` (model-made by default; `COMPOSITE` for engine frames beside model frames)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = self.provenance(**extra)
        if path.suffix == ".npy":
            np.save(path, np.asarray(frames, np.uint8))
        else:
            import imageio.v2 as imageio

            tmp = path.with_name(path.stem + ".part" + path.suffix)
            comment = json.dumps(info, sort_keys=True)
            with imageio.get_writer(tmp, fps=self.fps, codec="libx264", quality=8, macro_block_size=1,
                                    ffmpeg_log_level="error",
                                    output_params=["-metadata", f"comment={comment}"]) as w:
                for f in frames:
                    w.append_data(np.asarray(f, np.uint8))
            tmp.replace(path)
            sign(path, source, info)
        path.with_name(path.name + ".json").write_text(json.dumps(info, indent=1, sort_keys=True))
        return path

