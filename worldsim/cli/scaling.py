"""worldsim scaling: does the world model get better with training compute, at our scale? (docs/scaling.md)

Each DiT size in `sizes` (width x depth) trains on the same data with the same objective (`train`, by default the
reference recipe's without pose memory) and a constant learning rate after warm-up. First each size trains
`probe_steps` steps, which measure its seconds per step; its FLOPs per training step are counted by torch's
FlopCounterMode. The compute ladder is then `points` budgets, the largest one chosen so that all sizes reach it
within `minutes` of training (or `max_flops`: the same ladder on any machine), each half the next. Each size trains
on, stopping at every budget to score its checkpoint on held-out windows: the flow loss (fixed noise, EMA weights)
and the next-frame PSNR (1 Euler step). Writes OUT/scaling.json (every point: size, parameters, FLOPs, steps,
minutes, held-out loss, PSNR), OUT/scaling.png (loss and PSNR against FLOPs, per size, with the frontier's power-law
fit L = a C^-b) and OUT/report.md. Runs in OUT/<size>/ resume, so an interrupted study continues.

examples:
  worldsim scaling store=runs/recipe/latents vae=runs/recipe/vae heldout=runs/recipe/heldout out=runs/scaling
  worldsim scaling store=... vae=... heldout=... sizes=[64x2,128x4] minutes=10 points=3
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from worldsim.errors import InputError


def parse_sizes(sizes: Any) -> list[tuple[int, int, int]]:
    """["64x2", ...] -> [(width, depth, heads)], heads = width / 32 (head size 32)."""
    out = []
    for s in sizes:
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", str(s))
        if not m or int(m.group(1)) % 32 or int(m.group(1)) < 32 or int(m.group(2)) < 1:
            raise InputError(f"size {s!r}: write WIDTHxDEPTH with WIDTH a multiple of 32, e.g. 128x4")
        out.append((int(m.group(1)), int(m.group(2)), int(m.group(1)) // 32))
    if len(out) < 2:
        raise InputError("sizes needs at least two model sizes to compare")
    return out


def _train(raw: Any, run: Path, size: tuple[int, int, int], steps: int) -> float:
    """Train run `run` (resuming) up to `steps`; returns the seconds it took."""
    from worldsim.cli.common_train import as_list
    from worldsim.cli.recipe import overrides, run_stage

    w, d, h = size
    args = [*overrides(raw.train), f"store=[{','.join(as_list(raw.store, 'store'))}]", f"vae={raw.vae}",
            f"out={run}", f"steps={steps}", f"save_every={steps}", "lr_floor=1.0", f"model.width={w}",
            f"model.depth={d}", f"model.heads={h}", "model.memory=0"]
    t = time.perf_counter()
    run_stage("train", args)
    return time.perf_counter() - t


def _seconds_per_step(run: Path) -> float:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "tokens_per_s" in r]
    if not rows:
        raise InputError(f"{run}/metrics.jsonl has no speed to read: keep train.log_every at 1")
    from worldsim.model import checkpoint as C

    meta = C.load_meta(C.resolve(run))
    h, w = meta["height"] // meta["vae"]["config"]["spatial"], meta["width"] // meta["vae"]["config"]["spatial"]
    p = meta["spec"]["dit"]["patch"]
    tokens = int(meta["train"]["batch_size"]) * int(meta["frames"]) // meta["spec"]["temporal"] * (h // p) * (w // p)
    return tokens / float(rows[-1]["tokens_per_s"])


def _score(raw: Any, run: Path) -> dict[str, float]:
    import torch

    from worldsim.eval.metrics import next_frame_metrics
    from worldsim.eval.scaling import heldout_loss
    from worldsim.model.sampler import WorldSampler
    from worldsim.train.data import StoreSet

    with torch.no_grad():
        s = WorldSampler.load(run)  # once: the held-out loss and the PSNR score the same EMA weights
        loss = heldout_loss(s, str(raw.heldout), int(raw.val_windows))
        nf = next_frame_metrics(s, StoreSet([str(raw.heldout)], s.frames, "all"), int(raw.psnr_windows),
                                steps=s.dream_steps)
    return {"heldout_loss": loss, "next_frame_psnr": nf["next_frame_psnr"],
            "copy_last_psnr": nf["copy_last_frame_psnr"]}


def main(raw) -> int:
    from worldsim.cli.common_train import as_list
    from worldsim.eval.scaling import fit_power_law, parameters, train_flops

    sizes = parse_sizes(raw.sizes)
    if raw.minutes <= 0 or raw.points < 2 or raw.probe_steps < 2:
        raise InputError("minutes must be > 0, points >= 2 and probe_steps >= 2")
    out = Path(str(raw.out))
    out.mkdir(parents=True, exist_ok=True)
    store = as_list(raw.store, "store")
    t_start = time.perf_counter()
    probe = {}
    for size in sizes:
        run = out / f"{size[0]}x{size[1]}"
        _train(raw, run, size, int(raw.probe_steps))
        probe[size] = {"s_per_step": _seconds_per_step(run), "flops_per_step": train_flops(run, store),
                       "parameters": parameters(run)}
        print(f"scaling: {size[0]}x{size[1]}: {probe[size]['parameters'] / 1e6:.2f}M DiT parameters, "
              f"{probe[size]['flops_per_step'] / 1e9:.1f} GFLOP per step, {probe[size]['s_per_step']:.2f} s per step",
              flush=True)
    # the largest budget all sizes reach in `minutes`: sum over sizes of budget * (s/step) / (FLOPs/step)
    sec_per_flop = sum(p["s_per_step"] / p["flops_per_step"] for p in probe.values())
    top = float(raw.max_flops) if raw.max_flops else float(raw.minutes) * 60 / sec_per_flop
    budgets = [top / 2**k for k in reversed(range(int(raw.points)))]
    rows: list[dict[str, Any]] = []
    for size in sizes:
        run, p = out / f"{size[0]}x{size[1]}", probe[size]
        trained = 0.0
        for budget in budgets:
            steps = max(int(raw.probe_steps), round(budget / p["flops_per_step"]))
            trained += _train(raw, run, size, steps)
            row = {"size": f"{size[0]}x{size[1]}", "width": size[0], "depth": size[1], "parameters": p["parameters"],
                   "steps": steps, "flops": steps * p["flops_per_step"], "budget": budget,
                   "train_minutes": round(trained / 60, 2), **_score(raw, run)}
            rows.append(row)
            print(f"scaling: {row['size']} step {steps}: {row['flops']:.3g} FLOPs, held-out loss "
                  f"{row['heldout_loss']:.4f}, next-frame PSNR {row['next_frame_psnr']:.2f} dB", flush=True)
            (out / "scaling.json").write_text(json.dumps({"rows": rows, "probe": _probe_json(probe)}, indent=1))
    frontier = [min((r for r in rows if r["budget"] == b), key=lambda r: r["heldout_loss"]) for b in budgets]
    fit = fit_power_law([r["flops"] for r in frontier], [r["heldout_loss"] for r in frontier])
    fits = {f"{w}x{d}": fit_power_law([r["flops"] for r in rows if r["width"] == w and r["depth"] == d],
                                      [r["heldout_loss"] for r in rows if r["width"] == w and r["depth"] == d])
            for w, d, _ in sizes}
    result = {"rows": rows, "probe": _probe_json(probe), "budgets": budgets, "frontier_fit": fit, "size_fits": fits,
              "frontier": [r["size"] for r in frontier], "minutes": round((time.perf_counter() - t_start) / 60, 1),
              "config": {"sizes": [str(s) for s in raw.sizes], "store": store, "vae": str(raw.vae),
                         "heldout": str(raw.heldout), "minutes": float(raw.minutes), "points": int(raw.points),
                         "max_flops": top}}
    (out / "scaling.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "scaling.png")
    (out / "report.md").write_text(report(result))
    print(report(result))
    print(f"outputs: {out} (scaling.json, scaling.png, report.md, one run per size)")
    return 0


def _probe_json(probe: dict) -> dict[str, Any]:
    return {f"{w}x{d}": v for (w, d, _), v in probe.items()}


def report(result: dict[str, Any]) -> str:
    fit = result["frontier_fit"]
    lines = ["# worldsim scaling study", "",
             f"Held-out flow loss against training compute, frontier fit L = {fit['a']:.3g} * C^-{fit['b']:.4f} "
             f"(R^2 {fit['r2']:.3f}); per size: "
             + ", ".join(f"{k} b={v['b']:.4f}" for k, v in result["size_fits"].items()) + ".", "",
             "| size | DiT parameters | steps | training FLOPs | minutes | held-out loss | next-frame PSNR (dB) | "
             "copy-last (dB) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['size']} | {r['parameters'] / 1e6:.2f}M | {r['steps']} | {r['flops']:.3g} | "
                     f"{r['train_minutes']} | {r['heldout_loss']:.4f} | {r['next_frame_psnr']:.2f} | "
                     f"{r['copy_last_psnr']:.2f} |")
    lines += ["", f"Study time: {result['minutes']} minutes (training, scoring and the speed probes).", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for size in dict.fromkeys(r["size"] for r in result["rows"]):
        rs = [r for r in result["rows"] if r["size"] == size]
        label = f"{size} ({rs[0]['parameters'] / 1e6:.2f}M)"
        a.plot([r["flops"] for r in rs], [r["heldout_loss"] for r in rs], "o-", label=label)
        b.plot([r["flops"] for r in rs], [r["next_frame_psnr"] for r in rs], "o-", label=label)
    fit = result["frontier_fit"]
    xs = np.geomspace(min(r["flops"] for r in result["rows"]), max(r["flops"] for r in result["rows"]), 50)
    a.plot(xs, fit["a"] * xs ** -fit["b"], "k--", label=f"frontier fit: C^-{fit['b']:.3f} (R^2 {fit['r2']:.2f})")
    copy = float(np.mean([r["copy_last_psnr"] for r in result["rows"]]))
    b.axhline(copy, color="gray", ls=":", label=f"copy last frame ({copy:.2f} dB)")
    for ax, ylabel in ((a, "held-out flow loss"), (b, "next-frame PSNR (dB), 1 Euler step")):
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    a.set_yscale("log")
    fig.suptitle("worldsim scaling study: same data, same objective, DiT sizes along a compute ladder")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
