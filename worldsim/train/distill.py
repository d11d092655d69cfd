"""Distil a teacher-forced world model into a smaller one-step student for DreamEnv (`worldsim distill`).

    result = distill(DistillConfig(ckpt="runs/dit", steps=500))   # -> runs/dit/student, a complete world model

A dreamed step runs the DiT once per Euler step over the newest context frame and the new frame; at batch 32 that
pass is most of a step (docs/benchmarks.md). The student is the same model with fewer blocks (`depth`, by default
a third of the teacher's), started from the teacher's weights: every module it shares with the teacher is copied,
and its blocks are copied from teacher blocks spread over the teacher's depth (first and last kept). It is then
trained on the teacher's training windows for one thing only, what DreamEnv asks of it: from pure noise (t = 1) and
a clean past, in one step, the frame the teacher draws with `teacher_steps` Euler steps from the same noise and the
same past (Luhman & Luhman's knowledge distillation of a sampler, per frame under teacher forcing). `gt_weight` mixes
in the real frame as a second target. The student's checkpoint names its teacher (path, digest, steps) and records
`flow.p_pure_noise = 1`, so samplers give it one Euler step by default; it holds the teacher's VAE, and DreamEnv
uses the teacher's light decoder for it when the student has none of its own.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.flow import FlowConfig, euler_grid, shift_for, teacher_targets, token_count
from worldsim.model.sampler import WorldSampler, dream_steps_for
from worldsim.model.vae import VideoVAE
from worldsim.model.world_model import WorldModel
from worldsim.runtime import autocast, pick_device
from worldsim.train.data import make_loader
from worldsim.train.loop import Loop, Metrics, Schedule, check_resume, step_generator
from worldsim.train.train_dit import (
    TrainConfig,
    batch_latents,
    config_from_meta,
    ema_decay,
    memory_conditioning,
    open_data,
    pick_texts,
    update_ema,
)

STUDENT_DIR = "student"  # default run directory of a student, inside its teacher's run directory


@dataclass
class DistillConfig:
    ckpt: str = ""  # the teacher: a run directory of worldsim train (teacher forcing, frame-causal) or a checkpoint
    store: list[str] = field(default_factory=list)  # default: the teacher's training stores
    out: str | None = None  # default: <teacher run dir>/student
    depth: int = 0  # student blocks; 0: a third of the teacher's (at least 1): 2 of the tiny preset's 6
    teacher_steps: int = 0  # Euler steps of the teacher's target; 0: the teacher's own default (dream_steps_for)
    gt_weight: float = 0.0  # weight of the real frame as a second target (0: the teacher's frame only)
    steps: int = 500
    batch_size: int = 8
    lr: float = 2e-4
    warmup: int = 20
    grad_clip: float = 1.0
    ema: float = 0.995
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"
    log_every: int = 25
    save_every: int = 200


def default_out(teacher_ckpt: str | Path) -> Path:
    return C.run_dir(C.resolve(teacher_ckpt)) / STUDENT_DIR


def default_depth(teacher_depth: int) -> int:
    """A third of the teacher's blocks, at least one. Measured on the reference recipe's model (6 blocks,
    docs/benchmarks.md): 2 blocks held next-frame, horizon-16, dPSNR and revisit quality at 2.4x the teacher's speed
    at batch 32; 3 blocks held them too, at 1.8x."""
    return max(1, round(teacher_depth / 3))


def spread(n_from: int, n_to: int) -> list[int]:
    """`n_to` block indices spread evenly over `n_from` (first and last included when n_to >= 2)."""
    if n_to == 1:
        return [n_from - 1]
    return [round(i * (n_from - 1) / (n_to - 1)) for i in range(n_to)]


def student_from(teacher: WorldModel, depth: int) -> tuple[WorldModel, list[int]]:
    """A WorldModel like `teacher` with `depth` DiT blocks, its weights copied from the teacher (blocks spread over
    the teacher's depth). Returns the student and the teacher blocks it started from."""
    t_depth = len(teacher.dit.blocks)
    if not 1 <= depth <= t_depth:
        raise InputError(f"depth={depth}: a student needs 1 to {t_depth} blocks (the teacher has {t_depth})")
    kinds = [b.kind for b in teacher.dit.blocks]
    picked = spread(t_depth, depth)
    spec = copy.deepcopy(teacher.spec)
    spec.dit.depth = depth
    student = WorldModel(spec)
    if [b.kind for b in student.dit.blocks] != [kinds[i] for i in picked]:
        raise InputError(f"the teacher's blocks alternate {sorted(set(kinds))} attention and the blocks a "
                         f"{depth}-block student would copy do not; choose another depth")
    state = teacher.state_dict()
    for i, j in enumerate(picked):
        prefix, src = f"dit.blocks.{i}.", f"dit.blocks.{j}."
        for k in list(state):
            if k.startswith(src):
                state[prefix + k[len(src):]] = state[k]
    own = student.state_dict()
    student.load_state_dict({k: state[k] for k in own})
    return student, picked


def teacher_frames(teacher: WorldModel, noise: torch.Tensor, cond: dict[str, Any], clean: torch.Tensor,
                   t_clean: torch.Tensor, steps: int, precision: str, flow: FlowConfig | None = None
                   ) -> torch.Tensor:
    """Every frame of the windows drawn by the teacher from `noise` (t = 1) with `steps` Euler steps, each from the
    clean past before it (teacher forcing: all frames at once, as `DiT.forward_teacher` sees them), over the noise
    levels the teacher was trained at for windows of this size (`euler_grid` with the window's time shift under the
    teacher's `flow` config)."""
    b, nt = noise.shape[:2]
    x = noise
    shift = shift_for(token_count(noise.shape, teacher.spec.dit.patch), flow or FlowConfig())
    grid = euler_grid(steps, shift)
    with torch.no_grad():
        for t_now, t_next in zip(grid[:-1], grid[1:]):
            t = torch.full((b, nt), t_now, device=noise.device)
            with autocast(noise.device, precision):
                if t_next == 0.0:  # the last step lands on the clean estimate itself
                    return teacher(x, t, cond, clean=clean, t_clean=t_clean, x0=True).float()
                v = teacher(x, t, cond, clean=clean, t_clean=t_clean).float()
            x = x + (t_next - t_now) * v
    return x


def load_teacher(ckpt: str | Path, device: torch.device) -> tuple[WorldModel, VideoVAE, dict[str, Any], Path]:
    ck = C.resolve(ckpt)
    meta = C.load_meta(ck, kind="dit")
    if meta.get("teacher"):
        raise InputError(f"{ck} is already a distilled student (of {meta['teacher']['path']}); distil its teacher")
    flow = FlowConfig(**meta["train"]["flow"])
    if flow.objective != "teacher_forcing":
        raise InputError(f"{ck} was trained with flow.objective={flow.objective}; worldsim distill makes one-step "
                         "students of frame-causal world models trained with flow.objective=teacher_forcing, the "
                         "ones DreamEnv steps")
    s = WorldSampler.load(ck, device)  # EMA weights and the VAE, eval mode
    return s.model.requires_grad_(False), s.vae.requires_grad_(False), meta, ck


def distill(cfg: DistillConfig) -> dict[str, Any]:
    device = pick_device(cfg.device)
    teacher, vae, meta, ck = load_teacher(cfg.ckpt, device)
    t_cfg = config_from_meta(meta["train"])
    t_cfg.model, t_cfg.text = teacher.spec.dit, teacher.spec.text
    t_cfg.store = list(cfg.store) or list(meta["train"]["store"])
    t_cfg.batch_size = cfg.batch_size
    vae_meta = {"digest": meta["vae"]["digest"], "path": meta["vae"]["path"], "vae": meta["vae"]["config"],
                "val_psnr": meta["vae"].get("val_psnr"), "stores": meta["vae"].get("stores", [])}
    stores = open_data(t_cfg, vae, vae_meta)
    if stores.action_spec != meta.get("action_spec"):
        raise InputError(f"{stores.readers[0].url} has another action spec than the teacher {ck} was trained on")
    depth = cfg.depth or default_depth(len(teacher.dit.blocks))
    steps_t = cfg.teacher_steps or dream_steps_for(t_cfg.flow)
    if steps_t < 1 or cfg.gt_weight < 0:
        raise InputError(f"teacher_steps must be >= 0 and gt_weight >= 0, got {cfg.teacher_steps}, {cfg.gt_weight}")
    torch.manual_seed(cfg.seed)
    student, picked = student_from(teacher, depth)
    student = student.to(device).train().requires_grad_(True)
    ema = copy.deepcopy(student).requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    out = Path(cfg.out) if cfg.out else default_out(ck)
    prev, prev_meta = C.resume_point(out, "dit")
    start = 0
    if prev is not None:
        check_resume(out, prev_meta["step"], prev_meta.get("distill", {}), asdict(cfg), ("depth", "teacher_steps"),
                     [("teacher", prev_meta["teacher"]["digest"][:12] + "...", C.digest(ck)[:12] + "...")])
        student.load_state_dict(C.load_tensors(prev, "model"))
        ema.load_state_dict(C.load_tensors(prev, "ema"))
        C.load_optimizer(opt, C.load_tensors(prev, "optim"), prev_meta["optimizer"])
        start = int(prev_meta["step"])
        print(f"resumed from step {start} ({prev})")
    teacher_info = {"path": str(ck), "digest": C.digest(ck), "steps": steps_t, "blocks": picked,
                    "depth": len(teacher.dit.blocks)}
    metrics = Metrics(out, resume_step=start)
    loader = make_loader(stores, cfg.batch_size, cfg.seed, start_step=start)
    loop = Loop(opt, student.parameters(), Schedule(cfg.steps, cfg.lr, cfg.warmup, cfg.grad_clip), out, "distill",
                start=start)
    t0, seen = time.perf_counter(), 0
    for step in loop:
        batch = next(loader)
        g = step_generator(cfg.seed, step, 0, torch.device("cpu"))
        z, past = batch_latents(batch, stores, vae, device, cfg.precision, t_cfg.model.memory)
        loss, parts = distill_loss(t_cfg, cfg, teacher, student, z, batch, g, past, steps_t)
        loop.update(loss)
        update_ema(ema, student, min(cfg.ema, ema_decay(step, cfg.ema)))
        seen += len(z)
        if loop.due(cfg.log_every):
            rate = seen / (time.perf_counter() - t0)
            metrics.log(loop.done, {**parts, "grad_norm": loop.grad_norm, "lr": loop.lr, "windows_per_s": rate})
            loop.show(f"to teacher {parts['loss_teacher']:.4f} to real {parts['loss_real']:.4f}")
        if loop.due(cfg.save_every) or loop.done == cfg.steps:
            _save(out, cfg, t_cfg, meta, teacher_info, student, ema, opt, stores, vae, loop.done)
    metrics.close()
    return {"checkpoint": str(C.resolve(out)), "teacher": teacher_info["path"], "depth": depth,
            "teacher_depth": teacher_info["depth"], "teacher_steps": steps_t}


def distill_loss(t_cfg: TrainConfig, cfg: DistillConfig, teacher: WorldModel, student: WorldModel, z: torch.Tensor,
                 batch: dict[str, Any], g: torch.Generator, past: torch.Tensor | None, steps_t: int
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """One batch: captions and actions with the teacher's CFG dropout, the teacher-forcing context copy, then the
    student's one-step frames against the teacher's `steps_t`-step frames from the same noise (and the real ones)."""
    device = z.device
    texts = pick_texts(batch, t_cfg, g)
    use_actions = (torch.rand(len(texts), generator=g) >= t_cfg.p_drop_actions).to(device)
    state = g.get_state()  # both models recall memories with the same draws

    def cond_of(model: WorldModel) -> dict[str, Any]:
        g.set_state(state)
        with autocast(device, cfg.precision):
            if past is None:
                return model.conditioning(texts, batch["actions"].to(device), use_actions)
            return memory_conditioning(t_cfg, model, texts, z, past, batch, use_actions, g)

    with torch.no_grad():
        cond_t = cond_of(teacher)
    cond_s = cond_of(student)
    clean, t_clean, _, _, _ = teacher_targets(z, t_cfg.flow, g, t_cfg.model.patch)
    noise = torch.randn(z.shape, generator=g).to(device)
    target = teacher_frames(teacher, noise, cond_t, clean, t_clean, steps_t, cfg.precision, t_cfg.flow)
    ones = torch.ones(z.shape[:2], device=device)
    with autocast(device, cfg.precision):
        pred = student(noise, ones, cond_s, clean=clean, t_clean=t_clean, x0=True).float()
    to_teacher = (pred - target).pow(2).mean()
    to_real = (pred - z).pow(2).mean()
    loss = (to_teacher + cfg.gt_weight * to_real) / (1 + cfg.gt_weight)
    return loss, {"loss": loss.item(), "loss_teacher": to_teacher.item(), "loss_real": to_real.item(),
                  "teacher_to_real": float((target - z).pow(2).mean())}


def _save(out: Path, cfg: DistillConfig, t_cfg: TrainConfig, meta: dict[str, Any], teacher_info: dict[str, Any],
          student: WorldModel, ema: WorldModel, opt: torch.optim.Optimizer, stores: Any, vae: VideoVAE,
          step: int) -> None:
    """A complete world-model checkpoint (kind dit): the teacher's meta with the student's spec, a flow config that
    says it is sampled in one step from pure noise, and the teacher it came from."""
    opt_tensors, opt_meta = C.optimizer_tensors(opt)
    train = asdict(t_cfg)
    train["flow"]["p_pure_noise"] = 1.0  # trained at t = 1 only: one Euler step (dream_steps_for)
    train.update(out=str(out), steps=cfg.steps, seed=cfg.seed, lr=cfg.lr, batch_size=cfg.batch_size)
    new = {**{k: v for k, v in meta.items() if k not in ("optimizer", "step", "digest")},
           "spec": student.spec.as_dict(), "train": train, "optimizer": opt_meta, "teacher": teacher_info,
           "distill": asdict(cfg), "stores": [i.as_dict() for i in stores.infos]}
    C.save(out, step, {"model": student.state_dict(), "ema": ema.state_dict(), "optim": opt_tensors,
                       "vae": vae.state_dict()}, new)
