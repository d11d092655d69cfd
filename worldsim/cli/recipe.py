"""worldsim recipe: the reference pipeline end to end: data, VAE, DiT, held-out evaluation, a report.

Runs `generate` (a training store and a held-out store made from other seeds), `train-vae`, `train` and the
held-out evaluation (VAE reconstruction PSNR, next-frame PSNR beside copying the last frame), then writes
OUT/report.md and OUT/report.json with the numbers and the time each stage took. Each stage is resumable: running
the same command again skips or resumes what is done. Recipes live in configs/recipe/.

examples:
  worldsim recipe out=runs/voxel64                                  # recipe=voxel64_cpu (60 minutes on 2 cores)
  worldsim recipe recipe.train.steps=200 recipe.train_vae.steps=300 out=runs/quick
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


def run_stages(label: str, stages: list[tuple[str, str, list[str]]], extra: int = 0) -> dict[str, float]:
    """Run (name, command, overrides) stages in order, announcing each ("== LABEL i/n name: worldsim ..."; `extra`
    stages follow outside); returns the seconds each took."""
    times = {}
    total = len(stages) + extra
    for i, (name, command, args) in enumerate(stages, start=1):
        t = time.perf_counter()
        print(f"== {label} {i}/{total} {name}: worldsim {command} {' '.join(args)}", flush=True)
        run_stage(command, args)
        times[name] = round(time.perf_counter() - t, 1)
    return times


def main(raw) -> int:
    import torch

    from worldsim.eval.metrics import next_frame_psnr
    from worldsim.model.sampler import WorldSampler
    from worldsim.train.data import StoreSet

    r = raw.recipe
    out = Path(str(raw.out))
    data, heldout, vae, dit = out / "data", out / "heldout", out / "vae", out / "dit"
    times = run_stages("recipe", [
        ("generate", "generate", [*overrides(r.generate), f"out={data}"]),
        ("heldout", "generate", [*overrides(r.heldout), f"out={heldout}"]),
        ("train_vae", "train-vae", [*overrides(r.train_vae), f"store={data}", f"val_store={heldout}", f"out={vae}"]),
        ("train", "train", [*overrides(r.train), *overrides(r.get("model") or {}, "model."), f"store={data}",
                            f"vae={vae}", f"out={dit}", "val_episodes=0"]),
    ], extra=1)
    print(f"== recipe {len(times) + 1}/{len(times) + 1} eval: next-frame PSNR on the held-out store", flush=True)
    t = time.perf_counter()
    sampler = WorldSampler.load(dit)
    with torch.no_grad():
        ev = next_frame_psnr(sampler, StoreSet([str(heldout)], sampler.frames, "all"), int(r.eval.windows),
                             int(r.eval.steps))
    times["eval"] = round(time.perf_counter() - t, 1)
    vae_meta = json.loads((Path(sampler.meta["vae"]["path"]) / "meta.json").read_text())
    report = {"vae_heldout_psnr": vae_meta.get("val_psnr"), **ev, "seconds": times,
              "total_minutes": round(sum(times.values()) / 60, 1), "checkpoint": str(dit),
              "threads": torch.get_num_threads()}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    lines = ["# worldsim recipe report", "", f"- VAE held-out reconstruction PSNR: {report['vae_heldout_psnr']:.2f} dB",
             f"- next-frame PSNR (held-out seeds, {ev['windows']} windows, {ev['steps']} steps): "
             f"{ev['next_frame_psnr']:.2f} dB; VAE ceiling {ev['vae_reconstruction_psnr']:.2f} dB; "
             f"copying the last frame {ev['copy_last_frame_psnr']:.2f} dB",
             f"- time: {report['total_minutes']} minutes ({', '.join(f'{k} {v} s' for k, v in times.items())})", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"outputs: {out} (report.md, report.json, data/, heldout/, vae/, dit/)")
    return 0
