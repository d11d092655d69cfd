"""Train the world model (text encoder + DiT) on VAE latents of store windows, with rectified flow.

    result = train(TrainConfig(store=["data/voxel64"], vae="runs/vae", steps=2000, out="runs/dit"))

Each step: a bucketed batch of windows -> frozen VAE latents -> per-frame noise levels and context masks
(`flow.training_targets`) -> captions and actions with independent CFG dropout -> `model(x_t, t, cond)` -> masked
velocity MSE. AdamW with warmup + cosine, gradient clipping, EMA, bf16 autocast; DDP under torchrun (gloo on CPU,
nccl on GPU). Batch s and its noise are pure functions of (seed, s, rank), so a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.dit import DiTConfig
from worldsim.model.flow import FlowConfig, teacher_targets, token_count, training_targets
from worldsim.model.frames import to_model
from worldsim.model.goal_map import GOAL_KEYS, goal_latent, window_maps
from worldsim.model.text import Tokenizer
from worldsim.model.vae import VideoVAE, load_vae
from worldsim.model.world_model import ModelSpec, TextConfig, WorldModel
from worldsim.runtime import autocast, pick_device
from worldsim.train.adversarial import Adversary, check_settings
from worldsim.train.data import StoreSet, make_loader, store_changes, verify_stores
from worldsim.train.loop import (
    Loop,
    Metrics,
    Schedule,
    all_reduce_mean,
    check_resume,
    init_distributed,
    step_generator,
)


@dataclass
class TrainConfig:
    store: list[str] = field(default_factory=list)
    vae: str = ""  # VAE run directory or checkpoint
    out: str = "outputs/dit"
    steps: int = 2000
    frames: int = 8  # window length in frames (a multiple of the VAE's temporal factor)
    batch_size: int = 8  # per process
    lr: float = 3e-4
    warmup: int = 100
    lr_floor: float = 0.1  # cosine decay to lr_floor x lr; 1.0: constant after warm-up (the scaling study)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema: float = 0.999
    p_drop_text: float = 0.1  # classifier-free guidance: text and actions are dropped independently
    p_drop_actions: float = 0.1
    p_drop_goal: float = 0.1  # model.goal_map: this share of windows is trained with the goal unknown (no map)
    # model.goal_map: the flow loss on the latent pixels the goal's map covers (grown by one latent pixel each way)
    # weighs 1 + goal_weight (0: off): the pillar fills a few percent of a frame, so an unweighted loss pays little
    # for drawing it wrong (`goal_weights`)
    goal_weight: float = 0.0
    p_short_prompt: float = 0.3  # train on the short prompt instead of the dense caption this often
    val_episodes: int = 1
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"
    compile: bool = False
    workers: int = 0
    log_every: int = 25
    save_every: int = 500
    sample_every: int = 0  # write a sample video every N steps (0: only at the end)
    init: str | None = None  # fine-tune: start from this world model's EMA weights (its model/text/flow settings)
    # an adversarial term on the one-step frames (worldsim/train/adversarial.py; teacher forcing, delta prediction):
    # its weight beside the flow loss (0: off), the critic's learning rate and width, the noise level from which a
    # frame is judged (0.99: the frames at pure noise, where every dreamed frame starts), the steps the weight ramps
    adv_weight: float = 0.0
    adv_lr: float = 2e-4
    adv_width: int = 64
    adv_t_min: float = 0.99
    adv_warmup: int = 100
    model: DiTConfig = field(default_factory=DiTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)


def config_from_meta(train: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a checkpoint recorded (`meta["train"]`); keys this version does not know are left out, keys
    it added since take their defaults."""
    known = {f.name for f in fields(TrainConfig)} - {"model", "text", "flow"}
    return TrainConfig(**{k: v for k, v in train.items() if k in known}, model=DiTConfig(**train["model"]),
                       text=TextConfig(**train["text"]), flow=FlowConfig(**train["flow"]))


def all_texts(stores: StoreSet) -> list[str]:
    return [t for r in stores.readers for texts in r.texts() for t in texts]


def build_spec(cfg: TrainConfig, stores: StoreSet, vae_cfg: dict[str, Any]) -> ModelSpec:
    vocab = Tokenizer.build(all_texts(stores), cfg.text.max_vocab, cfg.text.max_len).vocab
    return ModelSpec(dit=cfg.model, text=cfg.text, vocab=vocab, latent_channels=vae_cfg["latent_channels"],
                     temporal=vae_cfg["temporal"], action_dim=stores.action_dim, action_scale=stores.action_scale,
                     prediction=cfg.flow.prediction)


def check_config(cfg: TrainConfig) -> None:
    """Refuse objective and prediction combinations that cannot train (before anything is loaded)."""
    if cfg.flow.objective not in ("diffusion_forcing", "teacher_forcing"):
        raise InputError(f"flow.objective must be diffusion_forcing or teacher_forcing, got {cfg.flow.objective!r}")
    if cfg.flow.objective == "teacher_forcing" and cfg.model.attention != "causal":
        raise InputError("flow.objective=teacher_forcing trains a frame-causal model: add model.attention=causal")
    if cfg.flow.pixel_loss < 0 or cfg.flow.pixel_frames < 1:
        raise InputError(f"flow.pixel_loss must be >= 0 and flow.pixel_frames >= 1, got {cfg.flow.pixel_loss} and "
                         f"{cfg.flow.pixel_frames}")
    if cfg.flow.pixel_loss > 0 and cfg.flow.prediction != "delta":
        raise InputError("flow.pixel_loss decodes the predicted clean frames: it needs flow.prediction=delta "
                         "(and flow.objective=teacher_forcing)")
    check_settings(cfg.adv_weight, cfg.adv_lr, cfg.adv_t_min, cfg.adv_warmup, cfg.adv_width)
    if cfg.adv_weight > 0 and (cfg.flow.prediction != "delta" or cfg.flow.objective != "teacher_forcing"):
        raise InputError("adv_weight judges the predicted clean frames of a teacher-forced model: it needs "
                         "flow.objective=teacher_forcing and flow.prediction=delta (the recipe's objective)")
    if cfg.goal_weight < 0:
        raise InputError(f"goal_weight must be >= 0, got {cfg.goal_weight}")
    if cfg.goal_weight > 0 and not cfg.model.goal_map:  # after adopt_init: a fine-tune's model is its parent's
        raise InputError("goal_weight weighs the loss where the goal's map covers: it needs model.goal_map=true")
    if not 0.0 <= cfg.flow.self_forcing <= 1.0 or cfg.flow.self_forcing_depth < 1:
        raise InputError(f"flow.self_forcing must be in [0, 1] and flow.self_forcing_depth >= 1, got "
                         f"{cfg.flow.self_forcing} and {cfg.flow.self_forcing_depth}")
    if cfg.flow.self_forcing > 0 and cfg.flow.objective != "teacher_forcing":
        raise InputError("flow.self_forcing replaces a teacher-forced window's context by the model's own "
                         "predictions: it needs flow.objective=teacher_forcing")
    if not 0.0 <= cfg.flow.p_pure_noise <= 1.0:
        raise InputError(f"flow.p_pure_noise must be in [0, 1], got {cfg.flow.p_pure_noise}")
    if cfg.flow.prediction not in ("velocity", "delta"):
        raise InputError(f"flow.prediction must be velocity or delta, got {cfg.flow.prediction!r}")
    if cfg.flow.prediction == "delta" and (cfg.flow.objective != "teacher_forcing" or not cfg.model.prev_frame):
        raise InputError("flow.prediction=delta predicts each frame's change from the clean frame before it: it needs "
                         "flow.objective=teacher_forcing and model.prev_frame=true")


def open_data(cfg: TrainConfig, vae: torch.nn.Module, vae_meta: dict[str, Any]) -> StoreSet:
    """The training windows, checked against the VAE (its latents, its spatial factor x the patch size)."""
    if cfg.frames % vae.cfg.temporal:
        raise InputError(f"frames={cfg.frames} is not a multiple of the VAE's temporal factor {vae.cfg.temporal}")
    verify_stores(cfg.store)
    if cfg.model.memory and vae.cfg.temporal != 1:
        raise InputError(f"model.memory recalls single frames: it needs a per-frame VAE (this one has "
                         f"vae.temporal={vae.cfg.temporal})")
    stores = StoreSet(cfg.store, cfg.frames, "train", cfg.val_episodes, history=cfg.model.memory)
    for r in stores.readers if stores.latents else []:
        made_by = r.attrs["latents"]["vae"].get("digest", "")
        if made_by != vae_meta["digest"]:
            raise InputError(f"{r.url} holds latents of another VAE ({made_by[:12]}...) than vae={cfg.vae} "
                             f"({vae_meta['digest'][:12]}...); cache them again with this VAE")
    for h, w in stores.resolutions():
        if h % (vae.cfg.spatial * cfg.model.patch) or w % (vae.cfg.spatial * cfg.model.patch):
            raise InputError(f"resolution {h}x{w} is not divisible by VAE factor x patch "
                             f"({vae.cfg.spatial} x {cfg.model.patch})")
    return stores


# what a resumed run may not change (worldsim.train.loop.check_resume): the model, and the data it learns from
# (the stores and the VAE by their digests: a path may change, the content may not)
RESUME_FIXED = ("frames", "val_episodes", "model", "text", "flow.objective", "flow.prediction")


def adopt_init(cfg: TrainConfig, meta_prev: dict[str, Any] | None
               ) -> tuple[TrainConfig, dict[str, Any] | None, dict[str, Any] | None]:
    """`init=RUN` (fine-tuning a world model on new data): the run starts from that model's EMA weights, so it keeps
    its architecture, its text encoder and vocabulary, and its objective: the model, text and flow settings come from
    its checkpoint whatever the command line says; steps, lr, frames, stores and the rest are as given.

    Returns the config to train with, the parent to load ({"ckpt", "meta", "spec"}; None without init and when
    `meta_prev`, the run's own newest checkpoint, is resumed: it holds what it took from the parent, which need not
    be there any more) and the record of the parent that the checkpoints carry (`init`)."""
    if not cfg.init:
        return cfg, None, None
    if meta_prev:
        if not meta_prev.get("init"):
            raise InputError(f"out={cfg.out} holds a run that was not fine-tuned; init= starts a new run: choose "
                             "another out")
        recorded = config_from_meta(meta_prev["train"])
        return replace(cfg, model=recorded.model, text=recorded.text, flow=recorded.flow), None, meta_prev["init"]
    ckpt = C.resolve(cfg.init)
    meta = C.load_meta(ckpt, "dit")
    if meta.get("teacher"):
        raise InputError(f"init={cfg.init} is a distilled student (worldsim distill); fine-tune its teacher "
                         f"({meta['teacher'].get('path')}) and distil the result again")
    spec = ModelSpec.from_dict(meta["spec"])
    # what the weights learned from: the parent's stores and, for a parent fine-tuned itself, its parent's
    stores = {s["digest"]: s for s in [*meta.get("stores", []), *meta.get("init", {}).get("stores", [])]}
    record = {"path": str(ckpt), "digest": C.digest(ckpt), "step": meta["step"], "stores": list(stores.values())}
    recorded = config_from_meta(meta["train"])
    if cfg.model.goal_map and not spec.dit.goal_map:
        # the one architecture change a fine-tune may make: goal maps, through a new zero-initialised embedding and
        # a goal latent set from the data (`set_goal_latent`); the parent's weights load as they are
        spec = replace(spec, dit=replace(spec.dit, goal_map=True, goal_fov=cfg.model.goal_fov,
                                         goal_yaw=cfg.model.goal_yaw))
    # self-forcing is a training stage, not part of the model (Self-Forcing runs it after teacher forcing): the
    # fine-tune's own share and depth apply, not the parent's
    flow = replace(recorded.flow, self_forcing=cfg.flow.self_forcing, self_forcing_depth=cfg.flow.self_forcing_depth)
    return replace(cfg, model=spec.dit, text=recorded.text, flow=flow), \
        {"ckpt": ckpt, "meta": meta, "spec": spec}, record


def check_parent(parent: dict[str, Any], stores: StoreSet, vae_meta: dict[str, Any]) -> None:
    """Refuse a parent the new data cannot feed: latents of another VAE, or another action space."""
    meta, where, spec = parent["meta"], parent["ckpt"], parent["spec"]
    if meta["vae"].get("digest") != vae_meta["digest"]:
        raise InputError(f"init={where} was trained on the latents of VAE {meta['vae'].get('path')} "
                         f"({str(meta['vae'].get('digest'))[:12]}...), not vae={vae_meta['path']} "
                         f"({vae_meta['digest'][:12]}...): fine-tune with its VAE")
    if spec.action_dim != stores.action_dim:
        raise InputError(f"init={where} takes {spec.action_dim} action values per frame, the stores have "
                         f"{stores.action_dim}: a world model is fine-tuned on the same action space")


def build_or_resume(cfg: TrainConfig, stores: StoreSet, vae: torch.nn.Module, vae_meta: dict[str, Any],
                    device: torch.device, rank: int, prev: Path | None, meta_prev: dict[str, Any] | None,
                    parent: dict[str, Any] | None = None
                    ) -> tuple[ModelSpec, WorldModel, WorldModel, torch.optim.Optimizer, int]:
    """(spec, model, its EMA, the optimizer, the step to start from): fresh (from `parent`'s EMA weights when
    fine-tuning, `adopt_init`), or from `prev`, the newest checkpoint in out (`C.resume_point`), when it was trained
    on the same data, VAE and architecture (check_resume)."""
    if meta_prev:
        # the stored model's full DiT config (defaults included): a key added since (model.warp) is compared too
        recorded = {**meta_prev.get("train", {}), "model": asdict(ModelSpec.from_dict(meta_prev["spec"]).dit)}
        check_resume(cfg.out, meta_prev["step"], recorded, asdict(cfg), RESUME_FIXED,
                     [("vae", meta_prev.get("vae", {}).get("digest", "")[:12] + "...", vae_meta["digest"][:12] + "..."),
                      *store_changes(meta_prev.get("stores", []), stores)])
        spec = ModelSpec.from_dict(meta_prev["spec"])
    elif parent:
        check_parent(parent, stores, vae_meta)
        spec = parent["spec"]  # its vocabulary and action scale too: the weights were learned with them
    else:
        spec = build_spec(cfg, stores, vae.config_dict())
    torch.manual_seed(cfg.seed)
    model = WorldModel(spec).to(device)
    if parent:
        # goal maps added by this fine-tune (or by an earlier version of them) start from their own initialisation
        C.load_into(model, parent["ckpt"], "ema", new=("dit.goal_in.", "dit.goal_latent") if spec.dit.goal_map else ())
        if rank == 0:
            print(f"fine-tuning {parent['ckpt']} (step {parent['meta']['step']}): its model, text and flow settings")
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.weight_decay)
    if prev is None:
        return spec, model, ema, opt, 0
    model.load_state_dict(C.load_tensors(prev, "model"))
    ema.load_state_dict(C.load_tensors(prev, "ema"))
    C.load_optimizer(opt, C.load_tensors(prev, "optim"), meta_prev["optimizer"])
    if rank == 0:
        print(f"resumed from step {meta_prev['step']} ({prev})")
    return spec, model, ema, opt, int(meta_prev["step"])


def batch_loss(cfg: TrainConfig, model: WorldModel, fwd: torch.nn.Module, z: torch.Tensor, batch: dict[str, Any],
               g: torch.Generator, past: torch.Tensor | None = None, vae: VideoVAE | None = None,
               adv: Adversary | None = None, step: int = 0) -> torch.Tensor:
    """The flow loss of one batch of latent windows z (B, T', C, h, w): captions and actions with CFG dropout, then
    diffusion forcing (random noise levels and context masks) or teacher forcing (every frame from its clean past).
    With memory (`model.memory`), `past` (B, H, C, h, w) holds the latents of the rows before each window; with
    `flow.pixel_loss` > 0, `vae` decodes the predicted frames for the pixel term (`pixel_term`); with `adv`, the
    adversarial term on the one-step frames is added (`Adversary.generator_term`, its weight ramped by `step`)."""
    device = z.device
    extra = 0.0  # the pixel and adversarial terms, when on
    texts = pick_texts(batch, cfg, g)
    use_actions = (torch.rand(len(texts), generator=g) >= cfg.p_drop_actions).to(device)
    with autocast(device, cfg.precision):
        if past is None:
            cond = model.conditioning(texts, batch["actions"].to(device), use_actions)
        else:
            cond = memory_conditioning(cfg, model, texts, z, past, batch, use_actions, g)
    weights = None
    if model.spec.dit.goal_map:
        cond["goal"] = goal_conditioning(cfg, model, z, batch, g)
        if cfg.goal_weight > 0:
            weights = goal_weights(cond["goal"], cfg.goal_weight)
    if cfg.flow.objective == "teacher_forcing":
        clean, t_clean, x_t, t, target = teacher_targets(z, cfg.flow, g, cfg.model.patch)
        if cfg.flow.self_forcing > 0:
            clean, cond = own_context(cfg, model, fwd, z, clean, t_clean, cond, batch, g, past)
        loss_mask = torch.ones_like(t)
        delta = model.spec.prediction == "delta"
        with autocast(device, cfg.precision):
            out = fwd(x_t, t, cond, clean=clean, t_clean=t_clean, x0=delta)
        if delta:  # the loss on the clean frame (x0-prediction): a velocity loss would weigh it by 1/t^2
            target = z
        if cfg.flow.pixel_loss > 0:
            assert vae is not None, "flow.pixel_loss > 0 needs the VAE to decode with"
            extra = cfg.flow.pixel_loss * pixel_term(cfg, vae, out, z, t)
        if adv is not None:
            extra = extra + adv.generator_term(out, z, t, step)
    else:
        x_t, t, target, loss_mask = training_targets(z, cfg.flow, g, cfg.model.patch)
        with autocast(device, cfg.precision):
            out = fwd(x_t, t, cond)
    err = (out.float() - target).pow(2)
    per_frame = (err if weights is None else err * weights).mean(dim=(2, 3, 4))  # (B, T')
    return (per_frame * loss_mask).sum() / loss_mask.sum().clamp_min(1) + extra


def goal_weights(maps: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-latent-pixel loss weights (B, T', 1, h, w) from goal maps (B, T', 2, h, w): 1 + weight x the goal's
    cover grown by one latent pixel each way (a 3x3 max: the map assumes flat ground and a level view, so the
    engine's pillar can sit a pixel off it); 1 where the goal is unknown or out of view."""
    b, nt, _, h, w = maps.shape
    cover = (maps[:, :, 0] * maps[:, :, 1]).reshape(b * nt, 1, h, w).float()
    grown = F.max_pool2d(cover, 3, stride=1, padding=1)
    return 1.0 + weight * grown.reshape(b, nt, 1, h, w)


def adversary(cfg: TrainConfig, spec: ModelSpec, device: torch.device, prev: Path | None,
              meta_prev: dict[str, Any] | None, rank: int) -> Adversary | None:
    """The critic of the adversarial term (`adv_weight` > 0; None otherwise), resumed from `prev` when that
    checkpoint holds one (a run that adds the term on resume starts its critic fresh)."""
    if cfg.adv_weight <= 0:
        return None
    adv = Adversary(spec.latent_channels, cfg.adv_weight, cfg.adv_lr, cfg.adv_t_min, cfg.adv_warmup, cfg.adv_width,
                    device, cfg.precision, seed=cfg.seed + 7919)
    if prev is not None and meta_prev is not None and not adv.load(prev, meta_prev) and rank == 0:
        print(f"adversarial term: {prev} holds no critic; it starts fresh")
    return adv


def goal_conditioning(cfg: TrainConfig, model: WorldModel, z: torch.Tensor, batch: dict[str, Any],
                      g: torch.Generator) -> torch.Tensor:
    """Goal maps (B, T', 2, h, w) of the windows (worldsim/model/goal_map.py): from each frame's recorded task
    state (its first two columns: the goal's forward and right offsets; `goal_column` checked that every store
    records them), unknown (zeros) in a share `p_drop_goal` of windows."""
    b, nt, _, h, w = z.shape
    if model.spec.temporal != 1:
        raise InputError("model.goal_map paints one map per frame: it needs a per-frame VAE (vae.temporal=1)")
    known = torch.rand(b, generator=g) >= cfg.p_drop_goal
    d = model.spec.dit
    maps = window_maps(batch["task_state"][..., :2].float(), batch["actions"].float(), known, h, w, d.goal_fov,
                       d.goal_yaw)
    return maps.to(z.device)


def pixel_term(cfg: TrainConfig, vae: VideoVAE, x0_pred: torch.Tensor, z: torch.Tensor, t: torch.Tensor
               ) -> torch.Tensor:
    """Pixel MSE (frames in [-1, 1]) of the predicted clean latents decoded by the frozen VAE against the decoded
    targets, on the `flow.pixel_frames` frames of each window with the highest noise levels (ties: the earlier
    frame): the frames the one-step sampler draws from pure noise. Gradients reach the DiT through the decoder."""
    b, nt = z.shape[:2]
    k = min(cfg.flow.pixel_frames, nt)
    idx = t.float().sort(dim=1, descending=True, stable=True).indices[:, :k]  # (B, k)
    rows = torch.arange(b, device=z.device)[:, None]
    with autocast(z.device, cfg.precision):
        pred = vae.decode_normalised(x0_pred[rows, idx])
        with torch.no_grad():
            real = vae.decode_normalised(z[rows, idx])
    return (pred.float() - real).pow(2).mean()


def memory_conditioning(cfg: TrainConfig, model: WorldModel, texts: list[str], z: torch.Tensor, past: torch.Tensor,
                        batch: dict[str, Any], use_actions: torch.Tensor, g: torch.Generator) -> dict[str, Any]:
    """Conditioning of windows that have the rows before them: the first frame gets the frame before it and the
    action into it (as a dreamed frame does), and every frame its memory, recalled from the window's earlier frames
    and the history (worldsim/model/memory.py). A share `flow.p_drop_memory` of frames gets none (as at the start
    of a dream), so the model also learns without."""
    device, n_past = z.device, past.shape[1]
    valid = batch["past_valid"].to(device)
    actions = torch.cat([batch["past_actions"], batch["actions"]], dim=1).to(device)
    cond = model.conditioning(texts, actions, use_actions, skip=n_past)
    cond["action_mask"][:, 0] &= valid[:, -1]
    cond["prev"] = past[:, -1] * valid[:, -1, None, None, None].to(past.dtype)
    cond["memory"] = recalled(cfg, model, past, z, batch, g)
    return cond


def recalled(cfg: TrainConfig, model: WorldModel, past: torch.Tensor, z: torch.Tensor, batch: dict[str, Any],
             g: torch.Generator, rows: torch.Tensor | None = None) -> torch.Tensor:
    """The memory of every frame of windows z (B, T, C, h, w), recalled from the rows before them (`past`) and the
    window's own earlier frames; `flow.p_drop_memory` of them zeroed. `rows`: the batch rows z and past hold."""
    device = z.device
    pick = slice(None) if rows is None else rows.cpu()
    valid = batch["past_valid"][pick].to(device)
    actions = torch.cat([batch["past_actions"][pick], batch["actions"][pick]], dim=1).to(device)
    ok = torch.cat([valid, torch.ones(z.shape[:2], dtype=torch.bool, device=device)], dim=1)
    mem = model.memory_for(torch.cat([past, z], dim=1), actions, past.shape[1], ok)
    keep = torch.rand(mem.shape[:2], generator=g) >= cfg.flow.p_drop_memory
    return mem * keep.to(device)[:, :, None, None, None]


def own_context(cfg: TrainConfig, model: WorldModel, fwd: torch.nn.Module, z: torch.Tensor, clean: torch.Tensor,
                t_clean: torch.Tensor, cond: dict[str, Any], batch: dict[str, Any], g: torch.Generator,
                past: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Self-forcing (`flow.self_forcing`, `flow.self_forcing_depth` = k): in that share of windows, every context
    frame after the first is replaced by the model's own prediction of it (one step from pure noise: what a dreamed
    step makes), with the same context noise, and memories are recalled from those predictions. The predictions
    are made in k passes over the window without gradients, each from the previous pass's predictions (Jacobi
    iterations of the rollout): after k passes a context frame is drawn from a past the model made itself up to k
    frames deep, as in a rollout k steps in (k = the window length: exactly the rollout from the first frame). The
    targets stay the real frames, so the model learns to draw a frame from a past it made itself, blurred and
    drifted as its own rollouts are, instead of only from the engine's sharp frames (teacher forcing's exposure
    gap)."""
    b, nt = z.shape[:2]
    rows = (torch.rand(b, generator=g) < cfg.flow.self_forcing).nonzero()[:, 0]
    noise = torch.randn(z.shape, generator=g)[rows].to(z.device)
    eps = torch.randn(z.shape, generator=g)[rows].to(z.device)
    if len(rows) == 0:
        return clean, cond
    idx = rows.to(z.device)
    sub = {k: v[idx] for k, v in cond.items()}
    tc = t_clean[idx][:, :, None, None, None]
    ctx = clean[idx]
    for _ in range(min(cfg.flow.self_forcing_depth, nt - 1)):
        with torch.no_grad(), autocast(z.device, cfg.precision):
            own = fwd(noise, torch.ones(len(idx), nt, device=z.device), sub, clean=ctx, t_clean=t_clean[idx],
                      x0=True).float()
        own[:, 0] = z[idx, 0]  # the first frame stays the engine's: a rollout starts from real context
        ctx = torch.cat([ctx[:, :1], ((1 - tc) * own + tc * eps)[:, 1:]], dim=1)
        if past is not None:
            sub = {**sub, "memory": recalled(cfg, model, past[idx], own, batch, g, rows)}
    clean = clean.clone()
    clean[idx] = ctx
    if past is not None:
        cond = {**cond, "memory": cond["memory"].clone()}
        cond["memory"][idx] = sub["memory"]
    return clean, cond


def goal_column(cfg: TrainConfig, stores: StoreSet, parent: dict[str, Any] | None
                ) -> tuple[TrainConfig, dict[str, Any] | None]:
    """model.goal_map: every store must record the goal's offsets (task state `goal_forward`, `goal_right`); without
    model.goal_yaw, the stores' `camera_yaw` action column turns the goal between frames (worldsim/model/goal_map.py
    `prior`; a game without one keeps -1: the goal stays where it was)."""
    if not cfg.model.goal_map:
        return cfg, parent
    for r in stores.readers:
        if list(r.task_state_keys)[:2] != list(GOAL_KEYS):
            raise InputError(f"model.goal_map=true learns where the goal is from the stores' task state, and {r.url} "
                             f"records {list(r.task_state_keys) or 'none'} (it needs {list(GOAL_KEYS)} first: "
                             "navigate stores made by this version of worldsim generate)")
    keys = list(stores.action_spec.get("flat_keys") or [])
    if cfg.model.goal_yaw >= 0 or "camera_yaw" not in keys:
        return cfg, parent
    model = replace(cfg.model, goal_yaw=keys.index("camera_yaw"))
    if parent:
        parent = {**parent, "spec": replace(parent["spec"], dit=replace(parent["spec"].dit, goal_yaw=model.goal_yaw))}
    return replace(cfg, model=model), parent


def set_goal_latent(model: WorldModel, ema: WorldModel, stores: StoreSet, vae: VideoVAE, device: torch.device,
                    precision: str) -> None:
    """A new goal-map model's `goal_latent`: the mean latent of the goal pillar's pixels in the training stores'
    frames (a latent store's source frames), encoded by the run's VAE (worldsim/model/goal_map.py)."""
    from store import read_episode

    def encode(frames: np.ndarray) -> torch.Tensor:
        with autocast(device, precision):
            return vae.encode(to_model(frames)[None].to(device))[0]

    def episodes() -> Iterator[np.ndarray]:
        for r in stores.readers:
            url = r.attrs["latents"]["source"] if stores.latents else r.url
            for i in r.episode_indices:
                yield read_episode(url, int(i))["frames"]

    z = goal_latent(encode, episodes(), vae.cfg.spatial).to(device)
    with torch.no_grad():
        model.dit.goal_latent.copy_(z)
        ema.dit.goal_latent.copy_(z)


def train(cfg: TrainConfig) -> dict[str, Any]:
    prev, meta_prev = C.resume_point(cfg.out, "dit")
    cfg, parent, init = adopt_init(cfg, meta_prev)
    check_config(cfg)
    device = pick_device(cfg.device)
    rank, world = init_distributed(device)
    out = Path(cfg.out)
    vae, vae_meta = load_vae(cfg.vae, device)
    vae.requires_grad_(False)
    stores = open_data(cfg, vae, vae_meta)
    cfg, parent = goal_column(cfg, stores, parent)
    spec, model, ema, opt, start = build_or_resume(cfg, stores, vae, vae_meta, device, rank, prev, meta_prev, parent)
    if spec.dit.goal_map and start == 0 and not bool(model.dit.goal_latent.detach().abs().sum()):
        set_goal_latent(model, ema, stores, vae, device, cfg.precision)
    adv = adversary(cfg, spec, device, prev, meta_prev, rank)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    fwd = torch.compile(net) if cfg.compile else net
    metrics = Metrics(out, enabled=rank == 0, resume_step=start)
    loader = make_loader(stores, cfg.batch_size, cfg.seed, start_step=start, rank=rank, workers=cfg.workers)
    loop = Loop(opt, model.parameters(), Schedule(cfg.steps, cfg.lr, cfg.warmup, cfg.grad_clip, cfg.lr_floor), out,
                "train", start=start, world=world, show=rank == 0)
    t0, tokens_seen, loss_value = time.perf_counter(), 0, float("nan")
    for step in loop:
        batch = next(loader)
        g = step_generator(cfg.seed, step, rank, torch.device("cpu"))
        z, past = batch_latents(batch, stores, vae, device, cfg.precision, cfg.model.memory)  # (B, T', C, h, w)
        loss = batch_loss(cfg, model, fwd, z, batch, g, past, vae, adv, step)
        loop.update(loss)
        if adv is not None:
            adv.critic_step()
        update_ema(ema, model, ema_decay(step, cfg.ema))
        tokens_seen += z.shape[0] * token_count(z.shape, cfg.model.patch)
        loss_value = float(all_reduce_mean(loss.detach(), world))
        if loop.due(cfg.log_every):
            rate = tokens_seen * world / (time.perf_counter() - t0)
            metrics.log(loop.done, {"loss": loss_value, "grad_norm": loop.grad_norm, "lr": loop.lr,
                                    "tokens_per_s": rate, **(adv.last if adv is not None else {})})
            loop.show(f"loss {loss_value:.4f} {rate:.0f} tok/s")
        if rank == 0 and loop.due(cfg.save_every):
            _save(cfg, spec, model, ema, opt, stores, vae, vae_meta, loop.done, init, adv)
        if rank == 0 and cfg.sample_every and loop.done % cfg.sample_every == 0:
            _preview(out, loop.done)
        if world > 1:
            dist.barrier()
    metrics.close()
    if rank == 0 and cfg.steps > start:
        _preview(out, cfg.steps)
    return {"checkpoint": str(C.resolve(out)) if rank == 0 else "", "loss": loss_value}


def batch_latents(batch: dict[str, Any], stores: StoreSet, vae: torch.nn.Module, device: torch.device,
                  precision: str, memory: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The windows' latents (B, T', C, h, w) and, for a model with memory (`memory` frames of history), the latents
    of the rows before them (else None): what `batch_loss` takes."""
    z = window_latents(batch, stores.latents, vae, device, precision)
    return z, (window_latents(batch, stores.latents, vae, device, precision, "past_") if memory else None)


def window_latents(batch: dict[str, Any], latent_store: bool, vae: torch.nn.Module, device: torch.device,
                   precision: str, prefix: str = "") -> torch.Tensor:
    """The batch's latents (B, T', C, h, w) float32: read from a latent store (worldsim cache-latents: the encoder
    already ran) or encoded from its frames; `prefix="past_"` for the rows before the windows."""
    if latent_store:
        return batch[f"{prefix}latents"].to(device).float()
    with torch.no_grad(), autocast(device, precision):
        return vae.encode(to_model(batch[f"{prefix}frames"]).to(device)).float()


def pick_texts(batch: dict[str, Any], cfg: TrainConfig, g: torch.Generator) -> list[str]:
    """Dense caption or short prompt per window; "" (unconditional) with probability p_drop_text."""
    r = torch.rand(len(batch["captions"]), 2, generator=g).numpy()
    out = []
    for (cap, prompt), (u_drop, u_short) in zip(zip(batch["captions"], batch["prompts"]), r):
        out.append("" if u_drop < cfg.p_drop_text else (prompt if u_short < cfg.p_short_prompt else cap))
    return out


@torch.no_grad()
def ema_decay(step: int, target: float) -> float:
    """EMA decay with warm-up, min(target, (1 + s) / (10 + s)): a fixed 0.999 would leave 67% of the random
    initialisation in the EMA weights after 400 steps (and 14% after 2000), and sampling uses the EMA weights."""
    return min(target, (1 + step) / (10 + step))


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def _save(cfg: TrainConfig, spec: ModelSpec, model: WorldModel, ema: WorldModel, opt: torch.optim.Optimizer,
          stores: StoreSet, vae: torch.nn.Module, vae_meta: dict[str, Any], step: int,
          init: dict[str, Any] | None = None, adv: Adversary | None = None) -> None:
    opt_tensors, opt_meta = C.optimizer_tensors(opt)
    adv_tensors, adv_meta = adv.state() if adv is not None else ({}, {})
    h, w = stores.resolutions()[0]
    meta = {
        "kind": "dit", "spec": spec.as_dict(), "train": asdict(cfg), "optimizer": opt_meta,
        "action_spec": stores.action_spec, "fps": stores.fps, "frames": cfg.frames,
        "resolutions": [list(r) for r in stores.resolutions()], "height": h, "width": w,
        "stores": [i.as_dict() for i in stores.infos],
        "example_prompts": sorted({p for r in stores.readers for p in r.prompts()})[:8],
        "heldout": {"val_episodes": cfg.val_episodes, "stores": cfg.store},
        "vae": {"path": vae_meta["path"], "digest": vae_meta["digest"], "config": vae_meta["vae"],
                "val_psnr": vae_meta.get("val_psnr"), "stores": vae_meta.get("stores", [])},
    }
    if init:  # fine-tuned: the model it started from, and what that one was trained on
        meta["init"] = init
    C.save(cfg.out, step, {"model": model.state_dict(), "ema": ema.state_dict(), "optim": opt_tensors,
                           "vae": vae.state_dict(), **adv_tensors}, {**meta, **adv_meta})


def _preview(out: Path, step: int) -> None:
    """A short text-to-video sample from the newest checkpoint, beside the metrics (best effort: never fails a run)."""
    try:
        from worldsim.model.sampler import WorldSampler

        s = WorldSampler.load(out)
        prompt = s.example_prompt()
        video = s.t2v(prompt, frames=s.frames, steps=8, seed=0)
        s.write_video(video, out / "samples" / f"step_{step:07d}.mp4", prompt=prompt)
    except Exception as err:  # a preview is a convenience; the checkpoint is what matters
        print(f"(preview at step {step} skipped: {type(err).__name__}: {err})")
