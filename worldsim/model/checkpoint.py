"""Checkpoints: safetensors for every tensor, JSON for everything else; atomic; loaded without unpickling.

A run directory holds `checkpoints/step_<N>/` folders and a `checkpoints/latest` file naming the newest:

    run/checkpoints/step_000500/model.safetensors   weights (and buffers)
                                ema.safetensors     EMA weights (DiT runs)
                                optim.safetensors   optimizer tensors (exp_avg, exp_avg_sq, step per parameter)
                                meta.json           config, step, optimizer hyper-parameters, provenance, ...

A save writes into a hidden temporary folder and renames it into place, then replaces `latest` (both atomic on
POSIX), so a kill at any moment leaves the previous checkpoint intact and `latest` naming a complete one. Every
command that takes `ckpt=` or `vae=` accepts a run directory (its latest checkpoint) or one checkpoint folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from worldsim.errors import CheckpointError

META = "meta.json"




def save(run_dir: str | Path, step: int, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any],
         keep_last: int = 3) -> Path:
    """Write `tensors` (file stem -> state dict) and `meta` as checkpoint `step`; keep the newest `keep_last`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:07d}"
    for stale in root.glob(".tmp_*"):  # left by a save that was killed (one writer per run: rank 0)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp_{name}_{os.getpid()}"
    tmp.mkdir()
    try:
        for stem, sd in tensors.items():
            save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, str(tmp / f"{stem}.safetensors"))
        (tmp / META).write_text(json.dumps({**meta, "step": step}, indent=1, sort_keys=True))
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)  # the older checkpoints and `latest` are untouched
        # safetensors reports a full disk in its own error type, with the OS error's text
        full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or "os error 28" in str(err)
        if not full:
            raise
        need = sum(v.numel() * v.element_size() for sd in tensors.values() for v in sd.values()) / 2**20
        free = shutil.disk_usage(root).free / 2**20
        raise CheckpointError(f"no space left on the device for checkpoint {name} in {root}: it needs about "
                              f"{need:.1f} MB and {free:.1f} MB is free; the earlier checkpoints are intact (free "
                              f"some space and run the same command again to continue from the newest)") from err
    final = root / name
    if final.exists():  # a checkpoint of the same step (a resumed run saving again): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(root / "latest", name + "\n")
    ckpts = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for old in ckpts[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def resolve(path: str | Path) -> Path:
    """A checkpoint folder from a run directory (its latest) or a checkpoint folder."""
    p = Path(path)
    if (p / META).is_file():
        return p
    latest = p / "checkpoints" / "latest"
    if latest.is_file():
        ck = p / "checkpoints" / latest.read_text().strip()
        if (ck / META).is_file():
            return ck
        raise CheckpointError(f"{latest} names {ck.name}, which is missing or incomplete")
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}")
    raise CheckpointError(f"{p} is neither a run directory (with checkpoints/latest) nor a checkpoint ({META})")


def run_dir(ckpt: Path) -> Path:
    """The run directory of a resolved checkpoint folder: the parent of `checkpoints/` (a loose checkpoint folder
    is its own run directory)."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt


def run_dirs(ckpt: Path) -> list[Path]:
    """Where a world model's companions (its light decoder, its reward model) are looked for: the run directory of a
    resolved checkpoint, then, for a one-step student of `worldsim distill`, its teacher's (same VAE, same game)."""
    dirs = [run_dir(ckpt)]
    teacher = load_meta(ckpt).get("teacher", {}).get("path")
    if teacher and Path(teacher).exists():
        dirs.append(run_dir(resolve(teacher)))
    return dirs


def latest(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None for a fresh run."""
    try:
        return resolve(Path(run_dir)) if (Path(run_dir) / "checkpoints" / "latest").is_file() else None
    except CheckpointError:
        return None


REQUIRED = {"dit": ("spec", "step", "vae", "frames", "height", "width", "train"), "vae": ("vae", "step"),
            "reward": ("model", "step"),
            "decoder": ("decoder", "latent_channels", "spatial", "step")}  # what loading each kind reads from meta.json
KINDS = {"vae": "a VAE (worldsim train-vae)", "dit": "a world-model (worldsim train)",
         "reward": "a reward model (worldsim train-reward)",
         "decoder": "a light decoder (worldsim distill-decoder)"}


def load_meta(ckpt: Path, kind: str | None = None) -> dict[str, Any]:
    """A checkpoint's meta.json; with `kind` ("vae", "dit", "reward"), refused unless the checkpoint is of that kind."""
    try:
        meta = json.loads((ckpt / META).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{ckpt / META} is unreadable: {err}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{ckpt / META} is not a JSON object")
    if kind is not None and meta.get("kind") != kind:
        what = KINDS[kind].split(" (")[0]
        raise CheckpointError(f"{ckpt} is a {meta.get('kind')!r} checkpoint, not {what} checkpoint "
                              f"({KINDS[kind].split(' (')[1]}")
    missing = [k for k in REQUIRED.get(kind or "", ()) if k not in meta]
    if missing:
        raise CheckpointError(f"{ckpt / META} lacks {', '.join(map(repr, missing))}: not a complete "
                              f"{KINDS[str(kind)].split(' (')[0][2:]} checkpoint (damaged, or written by hand)")
    return meta


RUN_FILES = ("checkpoints", "metrics.jsonl", "tensorboard", "samples", "reward")  # what a run directory holds


def check_run_dir(out: str | Path) -> None:
    """Refuse an `out` that cannot be a run directory: a file, a zarr store (training into a dataset would mix
    checkpoints into it), or a folder holding anything other than a run's own files."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise CheckpointError(f"out={out} is a file; choose a folder for the run")
    if (p / "zarr.json").exists():
        raise CheckpointError(f"out={out} is a zarr store (a dataset), not a run directory; choose another out")
    other = sorted(q.name for q in p.iterdir() if q.name not in RUN_FILES and not q.name.startswith(".")) \
        if p.is_dir() else []
    if other:
        raise CheckpointError(f"out={out} holds files that are not a run's ({', '.join(other[:5])}"
                              f"{' ...' if len(other) > 5 else ''}); choose a new or empty folder, or a run directory")


def resume_point(out: str | Path, kind: str) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint a run in `out` resumes from and its meta, (None, None) for a fresh run (no checkpoint there).

    `checkpoints/latest` names it; when that one is missing or incomplete (deleted by hand, a copy cut short), the
    newest intact `step_*` folder is used and a note says so: a run never restarts from zero over its own
    checkpoints. Refused when `out` holds checkpoints of which none is intact, or a run of another kind (training
    there would mix two runs)."""
    check_run_dir(out)
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return None, None
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    intact = [p for p in steps if (p / META).is_file() and (p / "model.safetensors").is_file()]
    named = root / "latest"
    prev = latest(Path(out))
    if prev is None and intact:
        prev = intact[-1]
        what = f"names {named.read_text().strip()!r}, which is missing or incomplete" if named.is_file() else \
            "is missing"
        print(f"note: {named} {what}; resuming from the newest intact checkpoint, {prev.name}", file=sys.stderr)
    if prev is None:
        if steps or named.is_file():
            held = ", ".join(p.name for p in steps) or f"only {named.name}"
            raise CheckpointError(f"out={out} holds checkpoints but none is intact ({held}); choose another out, "
                                  f"or delete {root} to start over")
        return None, None
    meta = load_meta(prev)
    if meta.get("kind") != kind:
        raise CheckpointError(f"{out} holds a {meta.get('kind')!r} run, not {KINDS[kind].split(' (')[0]} run; "
                              "choose another out")
    return prev, meta


def load_tensors(ckpt: Path, stem: str) -> dict[str, torch.Tensor]:
    """A state dict from `<stem>.safetensors` (safetensors: no code runs while loading)."""
    f = ckpt / f"{stem}.safetensors"
    if not f.is_file():
        raise CheckpointError(f"{f} is missing")
    try:
        return load_file(str(f))
    except Exception as err:  # safetensors raises its own error types for truncated files
        raise CheckpointError(f"{f} is corrupt or truncated: {err}") from err


def load_into(module: torch.nn.Module, ckpt: Path, stem: str, new: tuple[str, ...] = ()) -> None:
    """Load `<stem>.safetensors` into `module`; weights of another architecture (a checkpoint an older worldsim
    made, before a change to the model's layers) are a CheckpointError naming the first mismatch. `new`: name
    prefixes of layers the module adds to the checkpoint's (a fine-tune that adds an input): they keep their own
    initialisation; every other weight must be there."""
    try:
        tensors = load_tensors(ckpt, stem)
        if new:
            tensors.update({k: v for k, v in module.state_dict().items() if k.startswith(new) and k not in tensors})
        module.load_state_dict(tensors)
    except RuntimeError as err:
        detail = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err).splitlines()[0])
        raise CheckpointError(f"{ckpt} does not fit this version of worldsim's model ({detail[:160]}): it was made by "
                              "another version; retrain it, or sample it with the version that made it") from err


def digest(ckpt: Path) -> str:
    """sha256 over the checkpoint's safetensors files (what produced a sample)."""
    h = hashlib.sha256()
    for f in sorted(ckpt.glob("*.safetensors")):
        if f.name.startswith("optim"):
            continue
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as flat tensors plus JSON (param groups), so it loads without pickle."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            tensors[f"{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
