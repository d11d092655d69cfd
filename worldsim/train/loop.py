"""The training loop every trainer shares (VAE, DiT, reward model), and what it needs: the learning-rate schedule,
per-step noise, metrics, distributed set-up, the finite check.

    loop = Loop(opt, model.parameters(), Schedule(steps, lr, warmup, grad_clip), out, "train-vae", start=start)
    for step in loop:                                   # sets the learning rate, advances the progress bar
        loss = ...                                      # the trainer's own forward pass
        loop.update(loss)                               # finite check, backward, clipping, optimizer step
        if loop.due(log_every):
            metrics.log(loop.done, {"loss": loss.item(), "grad_norm": loop.grad_norm, ...})
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from worldsim.errors import CheckpointError, TrainingDiverged
from worldsim.model.checkpoint import latest


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_resume(out: str | Path, step: int, old: dict[str, Any], new: dict[str, Any], fixed: tuple[str, ...],
                 data: list[tuple[str, str, str]]) -> list[str]:
    """Compare the training config a run in `out` was started with (`old`) with this command's (`new`) before
    resuming at `step`. Keys in `fixed` (or under them: "model" covers "model.depth") change the model or its data,
    as does any (name, recorded, current) description in `data` that differs (the stores' or the VAE's digests):
    resuming would train one model on two things, so it is refused with a line naming each change and how to start
    fresh. Other changes (steps, logging, the learning rate) are allowed: returned as "key old -> new" and
    said on stderr. Keys only one side has (an older worldsim's config) are not compared."""
    a, b = _flat(old), _flat(new)
    changed = [k for k in sorted(set(a) & set(b)) if k != "out" and a[k] != b[k]]
    bad = [f"{k}={a[k]!r} -> {b[k]!r}" for k in changed if any(k == f or k.startswith(f + ".") for f in fixed)]
    bad += [f"{name} {was} -> {now}" for name, was, now in data if was and now and was != now]
    if bad:
        raise CheckpointError(f"out={out} holds a run at step {step} that this command would change: "
                              f"{'; '.join(bad)}. A change to the model or its data cannot continue it: run with "
                              f"the run's own settings to resume, or choose another out= to start fresh")
    notes = [f"{k} {a[k]!r} -> {b[k]!r}" for k in changed]
    if notes:
        print(f"note: resuming {out} at step {step} with changed settings: {', '.join(notes)}", file=sys.stderr)
    return notes


def lr_at(step: int, base: float, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warmup, then cosine decay to `floor` x base at `total` steps."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_generator(seed: int, step: int, rank: int, device: torch.device, salt: int = 0) -> torch.Generator:
    """Noise of step `step` on `rank` from its own generator: nothing to save for an exact resume."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(step) * 7919 + int(rank) * 104_729 + salt) % (2**63 - 1))
    return g


class Metrics:
    """One JSON object per logged step in `metrics.jsonl` (always) and TensorBoard scalars (when installed).
    Only rank 0 writes."""

    def __init__(self, out: Path, enabled: bool = True, resume_step: int = 0) -> None:
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "metrics.jsonl"
        if self.path.exists() and resume_step:  # drop lines logged after the checkpoint we resume from
            lines = self.path.read_text().splitlines()
            # the row of step `resume_step` was logged before that checkpoint was saved: keep it
            kept = [ln for ln in lines if ln and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        except ImportError:  # tensorboard is a dependency, but metrics.jsonl suffices without it
            self.tb = None

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size). Under torchrun (WORLD_SIZE > 1) joins the process group: gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world


def all_reduce_mean(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= world
    return x


def check_finite(loss: torch.Tensor, step: int, out: Path | None, world: int = 1) -> None:
    """Raise TrainingDiverged (on every rank at once) if `loss` is not finite, naming the last good checkpoint."""
    bad = torch.tensor(0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0)
    if all_reduce_mean(bad, world).item() > 0:
        last_good = latest(out) if out is not None else None
        where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        raise TrainingDiverged(f"the loss became {loss.item()} at step {step + 1}; stopped, {where} "
                               f"(try a lower lr, precision=fp32, or grad_clip)")


@dataclass
class Schedule:
    """How long and how fast: steps, the peak learning rate with its warm-up (then cosine to 10%), gradient clip."""

    steps: int
    lr: float
    warmup: int
    grad_clip: float
    floor: float = 0.1  # the cosine ends at floor x lr; 1.0: constant after warm-up (runs continued in chunks)


class Loop:
    """Steps `start` .. `schedule.steps - 1` of one optimizer: iterate for the step numbers, `update(loss)` once per
    step. A non-finite loss stops training (`TrainingDiverged`, on every rank) before it touches the weights.

    Args:
        opt: the optimizer; params: what it updates (clipped together).
        out: the run directory (named by the divergence message); desc: the progress bar's label.
        world: processes under torchrun (the finite check agrees across them); show: draw the progress bar.
    """

    def __init__(self, opt: torch.optim.Optimizer, params: Any, schedule: Schedule, out: Path | None, desc: str,
                 start: int = 0, world: int = 1, show: bool = True) -> None:
        self.opt, self.params, self.schedule, self.out, self.world = opt, list(params), schedule, out, world
        self.step = start
        self._grad_norm = torch.tensor(float("nan"))  # a tensor: read (a device sync) only when it is logged
        self.bar = tqdm(range(start, schedule.steps), initial=start, total=schedule.steps, desc=desc, unit="step",
                        disable=not show)

    def __iter__(self) -> Any:
        s = self.schedule
        try:
            for step in self.bar:
                self.step = step
                for group in self.opt.param_groups:
                    group["lr"] = lr_at(step, s.lr, s.warmup, s.steps, s.floor)
                yield step
        finally:
            self.bar.close()

    @property
    def done(self) -> int:
        """Steps finished once the current one is updated (the step number checkpoints and metrics use)."""
        return self.step + 1

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def due(self, every: int) -> bool:
        """Whether something done every `every` steps (and at the last step) is due after this step."""
        return bool(every) and (self.done % every == 0 or self.done == self.schedule.steps)

    def update(self, loss: torch.Tensor) -> None:
        """Finite check, backward, gradient clipping and the optimizer step; the norm in `grad_norm`."""
        check_finite(loss, self.step, self.out, self.world)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.schedule.grad_clip)
        self.opt.step()

    @property
    def grad_norm(self) -> float:
        """The last step's gradient norm before clipping."""
        return float(self._grad_norm)

    def show(self, text: str) -> None:
        self.bar.set_postfix_str(text)
