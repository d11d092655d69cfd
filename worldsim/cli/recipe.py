"""worldsim recipe: the reference pipeline end to end: data, VAE, DiT, held-out evaluation, a report.

Runs `generate` (a training store, a held-out store made from other seeds and, when the recipe names one, a
held-out store of look-away-and-back episodes), `train-vae`, `cache-latents`, `train` on the cached latents and
`worldsim eval` on the held-out stores (next-frame and rollout PSNR beside copying the last frame and the VAE
ceiling, dPSNR, the inverse-dynamics probe, revisit), then writes OUT/report.md and OUT/report.json with the numbers
and the time each stage took. Each stage is resumable: running the same command again skips or resumes what is done.
Recipes live in configs/recipe/.

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
        ("train", "train", [*overrides(r.train), *overrides(r.get("model") or {}, "model."), f"store={latents}",
                            f"vae={vae}", f"out={dit}", "val_episodes=0"]),
        ("eval", "eval", [*overrides(r.eval), f"ckpt={dit}", f"store={heldout}", f"train_store={data}", f"out={ev}",
                          *([f"revisit_store={lookback}"] if r.get("lookback") else [])]),
    ]
    times = run_stages("recipe", stages)
    result = json.loads((ev / "eval.json").read_text())
    report = {"vae_heldout_psnr": C.load_meta(C.resolve(vae)).get("val_psnr"), "eval": result, "seconds": times,
              "total_minutes": round(sum(times.values()) / 60, 1), "checkpoint": str(dit),
              "threads": torch.get_num_threads()}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    lines = ["# worldsim recipe report", "", f"- VAE held-out reconstruction PSNR: {report['vae_heldout_psnr']:.2f} dB",
             f"- held-out evaluation (`{ev}/report.md`, seeds never used in training):", "", R.table(result), "",
             f"- time: {report['total_minutes']} minutes ({', '.join(f'{k} {v} s' for k, v in times.items())})", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"outputs: {out} (report.md, report.json, data/, heldout/, vae/, latents/, dit/, eval/)")
    return 0
