"""worldsim recipe: the reference pipeline end to end: data, VAE, DiT, held-out evaluation, a report.

Runs `generate` (a training store, a held-out store made from other seeds and, when the recipe names one, a
held-out store of look-away-and-back episodes), `train-vae`, `cache-latents`, `train` on the cached latents and
`worldsim eval` on the held-out stores (next-frame and rollout PSNR beside copying the last frame and the VAE
ceiling, dPSNR, the inverse-dynamics probe, revisit), then writes OUT/report.md and OUT/report.json with the numbers
and the time each stage took. Each stage is resumable: running the same command again skips or resumes what is done.
Recipes live in configs/recipe/.

`recipe.train_minutes=M` sizes the DiT stage to this machine instead of `recipe.train.steps`: two short throwaway
runs (OUT/calibrate) time one training step, and the DiT trains for as many steps as fit in M minutes (rounded down
to a multiple of 50). The report records the steps chosen; `recipe.train.steps=N` reproduces the run elsewhere.

examples:
  worldsim recipe out=runs/voxel64                                  # recipe=voxel64_cpu (60 minutes on 2 cores)
  worldsim recipe recipe.train.steps=200 recipe.train_vae.steps=300 out=runs/quick
  worldsim recipe recipe=voxel64_gpu out=runs/gpu                   # preset S on one GPU, DiT sized to 4 minutes
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from worldsim.errors import InputError


def overrides(node, prefix: str = "") -> list[str]:
    """A recipe stage's keys as `key=value` overrides (nested keys dotted, lists in brackets)."""
    from omegaconf import DictConfig, ListConfig

    out = []
    for key, value in node.items():
        if isinstance(value, DictConfig):
            out += overrides(value, f"{prefix}{key}.")
        elif isinstance(value, ListConfig):
            out.append(f"{prefix}{key}=[{','.join(str(v) for v in value)}]")
        else:
            out.append(f"{prefix}{key}={'null' if value is None else value}")
    return out


def run_stage(command: str, overrides: list[str]) -> None:
    """Run one worldsim command in this process with `key=value` overrides (a failing stage raises)."""
    import importlib

    from worldsim.cli import COMMANDS, compose

    cfg = compose(command, overrides)
    code = importlib.import_module(COMMANDS[command][0]).main(cfg)
    if code:
        raise InputError(f"the {command} stage failed (exit status {code})")


def run_stages(label: str, stages: list[tuple[str, str, list[str]]], extra: int = 0,
               offset: int = 0) -> dict[str, float]:
    """Run (name, command, overrides) stages in order, announcing each ("== LABEL i/n name: worldsim ..."; `extra`
    stages follow outside, `offset` ran before); returns the seconds each took."""
    times = {}
    total = offset + len(stages) + extra
    for i, (name, command, args) in enumerate(stages, start=offset + 1):
        t = time.perf_counter()
        print(f"== {label} {i}/{total} {name}: worldsim {command} {' '.join(args)}", flush=True)
        run_stage(command, args)
        times[name] = round(time.perf_counter() - t, 1)
    return times


def size_training(train: list[str], minutes: float, where: Path, final: Path) -> dict[str, float]:
    """How many DiT steps fit in `minutes` here: two throwaway runs of `short` and `long` steps (fresh folders under
    `where`, removed after) time a step as the difference over the extra steps, so start-up (loading, the first
    step's compilation, the closing preview) cancels. A `final` run already there keeps its steps (a resumed
    recipe trains on to the same number). Steps are rounded down to a multiple of 50, at least 50."""
    import shutil

    from worldsim.model import checkpoint as C

    minutes = train_minutes(minutes)
    if C.latest(final) is not None:  # resuming: the steps were chosen when the run started
        steps = int(C.load_meta(C.resolve(final))["train"]["steps"])
        return {"steps": steps, "minutes": minutes, "resumed": True}
    short, long = 10, 40
    seconds = {}
    for k in (short, long):
        shutil.rmtree(where / str(k), ignore_errors=True)
        t = time.perf_counter()
        print(f"== recipe calibrate: {k} DiT steps to time one", flush=True)
        run_stage("train", [*train, f"steps={k}", f"save_every={k}", "warmup=5", f"out={where / str(k)}"])
        seconds[k] = time.perf_counter() - t
    shutil.rmtree(where, ignore_errors=True)
    per_step = max((seconds[long] - seconds[short]) / (long - short), 1e-4)
    steps = max(50, int(minutes * 60 / per_step) // 50 * 50)
    print(f"== recipe calibrate: {per_step * 1000:.1f} ms per step; {steps} steps fit in {minutes} minutes", flush=True)
    return {"steps": steps, "minutes": minutes, "seconds_per_step": round(per_step, 4),
            "calibration_seconds": {str(k): round(v, 1) for k, v in seconds.items()}}


def train_minutes(value) -> float | None:
    """`recipe.train_minutes` as a positive number of minutes (None: the DiT trains `recipe.train.steps`)."""
    if value is None:
        return None
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        raise InputError(f"recipe.train_minutes must be a number of minutes, got {value!r}") from None
    if minutes <= 0:
        raise InputError(f"recipe.train_minutes must be > 0, got {minutes}")
    return minutes


def device_name() -> str:
    """Where the DiT trained: the GPU's name, else the CPU's architecture and core count."""
    import os
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.machine()}, {os.cpu_count()} cores"


def main(raw) -> int:
    import torch

    from worldsim.eval import report as R
    from worldsim.model import checkpoint as C

    r = raw.recipe
    out = Path(str(raw.out))
    data, heldout, lookback = out / "data", out / "heldout", out / "lookback"
    vae, latents, dit, ev = out / "vae", out / "latents", out / "dit", out / "eval"
    stages = [
        ("generate", "generate", [*overrides(r.generate), f"out={data}"]),
        ("heldout", "generate", [*overrides(r.heldout), f"out={heldout}"]),
    ]
    if r.get("lookback"):  # held-out look-away-and-back episodes for the revisit metric
        stages.append(("lookback", "generate", [*overrides(r.lookback), f"out={lookback}"]))
    stages += [
        ("train_vae", "train-vae", [*overrides(r.train_vae), f"store={data}", f"val_store={heldout}", f"out={vae}"]),
        ("cache_latents", "cache-latents", [f"store={data}", f"vae={vae}", f"out={latents}"]),
    ]
    train = [*overrides(r.train), *overrides(r.get("model") or {}, "model."), f"store={latents}", f"vae={vae}",
             "val_episodes=0"]
    minutes = train_minutes(r.get("train_minutes"))  # checked before any stage runs
    times = run_stages("recipe", stages, extra=2)
    sizing = None
    if minutes is not None:
        t = time.perf_counter()
        sizing = size_training(train, minutes, out / "calibrate", dit)
        times["calibrate"] = round(time.perf_counter() - t, 1)
        train.append(f"steps={sizing['steps']}")
    times.update(run_stages("recipe", [
        ("train", "train", [*train, f"out={dit}"]),
        ("eval", "eval", [*overrides(r.eval), f"ckpt={dit}", f"store={heldout}", f"train_store={data}", f"out={ev}",
                          *([f"revisit_store={lookback}"] if r.get("lookback") else [])]),
    ], offset=len(stages)))
    result = json.loads((ev / "eval.json").read_text())
    report = {"vae_heldout_psnr": C.load_meta(C.resolve(vae)).get("val_psnr"), "eval": result, "seconds": times,
              "total_minutes": round(sum(times.values()) / 60, 1), "checkpoint": str(dit),
              "threads": torch.get_num_threads(),
              "train_steps": int(C.load_meta(C.resolve(dit))["step"]), "device": device_name()}
    if sizing:
        report["train_sizing"] = sizing
    (out / "report.json").write_text(json.dumps(report, indent=1))
    lines = ["# worldsim recipe report", "", f"- VAE held-out reconstruction PSNR: {report['vae_heldout_psnr']:.2f} dB",
             f"- DiT: {report['train_steps']} steps on {report['device']}"
             + (f" (as many as fit in {minutes} minutes: {sizing['seconds_per_step'] * 1000:.1f} ms per step)"
                if sizing and "seconds_per_step" in sizing else ""),
             f"- held-out evaluation (`{ev}/report.md`, seeds never used in training):", "", R.table(result), "",
             f"- time: {report['total_minutes']} minutes ({', '.join(f'{k} {v} s' for k, v in times.items())})", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"outputs: {out} (report.md, report.json, data/, heldout/, vae/, latents/, dit/, eval/)")
    return 0
