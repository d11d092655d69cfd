"""What `worldsim serve` finds under its roots: stores, world-model and VAE runs, evaluation reports; and the
summaries the pages show of each. Everything is read from files (JSON, zarr, safetensors); nothing is unpickled."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.web.paths import Roots

SKIP_DIRS = {"checkpoints", "tensorboard", "samples", "videos", "idm", "__pycache__", "node_modules"}


@dataclass(frozen=True)
class Item:
    """One thing found under a root: `kind` is "store", "run" or "eval"; `root` and `rel` name it in URLs."""

    kind: str
    root: int
    rel: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.root}/{self.rel}"


def _kind(path: Path, names: set[str]) -> str | None:
    if "zarr.json" in names:
        try:
            attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        except (OSError, ValueError):
            return None
        return "store" if "worldsim_schema" in attrs else None
    if "eval.json" in names or {"report.json", "report.md"} <= names:
        return "eval"  # `worldsim eval`'s folder, or the report of `worldsim demo` / `worldsim recipe`
    if (path / "checkpoints" / "latest").is_file() or ("meta.json" in names and "model.safetensors" in names):
        return "run"
    return None


class Catalog:
    """A scan of the roots (symlinks not followed, hidden folders skipped, `max_depth` levels), cached for `ttl`
    seconds so that a page does not walk the disk on every request."""

    def __init__(self, roots: Roots, max_depth: int = 6, ttl: float = 5.0, limit: int = 5000) -> None:
        self.roots, self.max_depth, self.ttl, self.limit = roots, max_depth, ttl, limit
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._when = -1e9

    def items(self, kind: str | None = None) -> list[Item]:
        with self._lock:
            if time.monotonic() - self._when > self.ttl:
                self._items, self._when = self._scan(), time.monotonic()
            items = list(self._items)
        return [i for i in items if kind is None or i.kind == kind]

    def _scan(self) -> list[Item]:
        found: list[Item] = []
        for r, base in enumerate(self.roots.dirs):
            stack = [(base, 0)]
            while stack and len(found) < self.limit:
                path, depth = stack.pop()
                try:
                    entries = list(os.scandir(path))
                except OSError:
                    continue
                names = {e.name for e in entries}
                kind = _kind(path, names)
                if kind is not None:
                    rel = path.relative_to(base).as_posix() if path != base else ""
                    found.append(Item(kind, r, rel, path))
                    if kind == "store":
                        continue  # a store's insides are chunks
                if depth >= self.max_depth:
                    continue
                for e in sorted(entries, key=lambda e: e.name, reverse=True):
                    if e.name.startswith(".") or e.name in SKIP_DIRS or e.is_symlink() or not e.is_dir():
                        continue
                    stack.append((Path(e.path), depth + 1))
        return sorted(found, key=lambda i: (i.kind, i.root, i.rel))

    def find(self, kind: str, root: int, rel: str) -> Item | None:
        return next((i for i in self.items(kind) if i.root == root and i.rel == rel), None)


# ---- stores ----------------------------------------------------------------------------------------------------------

def store_card(path: Path) -> dict[str, Any]:
    """The dataset card of a finalized store: counts, resolutions, engines, seeds, digest, provenance (raises
    StoreError for a store that is not a finalized worldsim store)."""
    import store as S

    root = S.open_store(str(path))
    a = dict(root.attrs)
    st, job = a.get("stats", {}), a.get("job", {})
    seeds: list[int] = []
    views: set[str] = set()
    for name in S.buckets(root):
        seeds += [int(s) for s in root[name]["meta/episode_seed"][...]]
        views |= set(_views(root[name]))
    return {
        "episodes": st.get("episodes"), "frames": st.get("frames"), "resolutions": st.get("resolutions", []),
        "fps": a.get("fps"), "env_ids": a.get("env_ids", []), "env_kwargs": job.get("env_kwargs", {}),
        "policy": job.get("policy"), "job_seed": job.get("seed"), "steps": job.get("steps"),
        "episode_seeds": [min(seeds), max(seeds)] if seeds else [], "digest": a.get("digest"),
        "generator": a.get("generator", {}), "licence": a.get("licence"),
        "action_keys": a.get("action_spec", {}).get("flat_keys", []), "views": sorted(views),
    }


def _views(bucket: Any) -> list[str]:
    """The image arrays of a bucket besides its frames (depth, segmentation): what else an episode can show."""
    import store as S

    return sorted(k for k in bucket["data"] if k not in S.DATA_KEYS)


def store_episodes(path: Path) -> list[dict[str, Any]]:
    """One row per episode: index, seed, resolution, length, short caption, policy, quality scores (means over its
    segments) and sampling weight."""
    import store as S

    root = S.open_store(str(path))
    rows = []
    for name in S.buckets(root):
        b = root[name]
        ends = b["meta/episode_ends"][...]
        starts = np.concatenate([[0], ends[:-1]])
        seg_ep = b["meta/segment_episode"][...]
        quality = {k: b[f"meta/{k}"][...] for k in S.SEGMENT_QUALITY if k in b["meta"]}
        weight = b["meta/sample_weight"][...]
        shorts, policies = S.read_texts(b, "episode_short"), S.read_texts(b, "episode_policy")
        for k, idx in enumerate(b["meta/episode_index"][...]):
            segs = seg_ep == k
            row = {"index": int(idx), "seed": int(b["meta/episode_seed"][k]), "bucket": name,
                   "frames": int(ends[k] - starts[k]), "caption": shorts[k], "policy": policies[k],
                   "weight": float(weight[segs].mean()) if segs.any() else 0.0}
            for q, v in quality.items():
                row[q.removeprefix("quality_")] = float(v[segs].mean()) if segs.any() else 0.0
            rows.append(row)
    return sorted(rows, key=lambda r: r["index"])


def _button_columns(spec: dict[str, Any]) -> list[str]:
    from store.spaces import column_kinds

    try:
        return [k for k, (kind, _) in zip(spec.get("flat_keys", []), column_kinds(spec)) if kind == "binary"]
    except Exception:  # an unknown spec: show every column as a number
        return []


def episode_view(path: Path, index: int) -> dict[str, Any]:
    """What the episode page plays: per frame the action (named columns), reward, terminal flags; the segments with
    their captions; the events; the extra image views the store holds (depth, segmentation)."""
    import store as S

    ep = S.read_episode(str(path), index)
    extra = _views(S.open_store(str(path))[ep["bucket"]])
    frames = ep["frames"]
    return {
        "index": index, "seed": ep["seed"], "bucket": ep["bucket"], "fps": ep["fps"] or 20,
        "length": int(len(frames)), "height": int(frames.shape[1]), "width": int(frames.shape[2]),
        "action_keys": ep["action_keys"], "buttons": _button_columns(ep["action_spec"]),
        "actions": np.round(ep["actions"].astype(np.float64), 3).tolist(),
        "rewards": np.round(ep["rewards"].astype(np.float64), 4).tolist(),
        "terminated": np.flatnonzero(ep["terminated"]).tolist(), "truncated": np.flatnonzero(ep["truncated"]).tolist(),
        "segments": [{"start": int(a), "end": int(b), "short": s, "dense": d}
                     for (a, b), s, d in zip(ep["segments"], ep["segment_short"], ep["segment_dense"])],
        "events": ep["events"], "caption": ep["episode_dense"], "short": ep["episode_short"], "policy": ep["policy"],
        "views": extra,
    }


def episode_frames(path: Path, index: int, start: int, count: int, view: str = "frames") -> np.ndarray:
    """Frames [start, start + count) of an episode as uint8 (N, H, W, 3); `view` names another image array of the
    store (depth, segmentation), drawn as a colour map."""
    import store as S

    root = S.open_store(str(path))
    for name in S.buckets(root):
        b = root[name]
        hit = np.flatnonzero(b["meta/episode_index"][...] == index)
        if len(hit) == 0:
            continue
        k = int(hit[0])
        ends = b["meta/episode_ends"][...]
        a0, a1 = (int(ends[k - 1]) if k else 0), int(ends[k])
        if view not in ("frames", *_views(b)):
            raise S.StoreError(f"the store has no image view {view!r}")
        lo, hi = a0 + max(0, start), min(a1, a0 + max(0, start) + max(0, count))
        arr = np.asarray(b[f"data/{view}"][lo:hi])
        return arr if view == "frames" else _colour(arr)
    raise S.StoreError(f"episode {index} is not in the store")


def _colour(arr: np.ndarray) -> np.ndarray:
    """A depth or label array (N, H, W) as an RGB picture: depth by a log grey ramp, labels by a fixed palette."""
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[-1] == 3 and arr.dtype == np.uint8:
        return arr
    a = arr[..., 0] if arr.ndim == 4 else arr
    if np.issubdtype(a.dtype, np.integer):
        rng = np.random.default_rng(0)
        palette = rng.integers(40, 256, size=(256, 3), dtype=np.uint8)
        palette[0] = 0
        return palette[np.asarray(a, np.int64) % 256]
    finite = np.isfinite(a)
    v = np.log1p(np.where(finite, np.maximum(a, 0), 0))
    top = float(v[finite].max()) if finite.any() else 1.0
    grey = np.where(finite, 255 - 255 * v / max(top, 1e-6), 0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


# ---- runs ------------------------------------------------------------------------------------------------------------

def run_summary(path: Path) -> dict[str, Any]:
    """A world-model, VAE or reward run (or one checkpoint): kind, step, parameters, config, the stores it learned
    from, the checkpoints it holds. Raises CheckpointError for an unreadable one."""
    from worldsim.model import checkpoint as C

    ck = C.resolve(path)
    meta = C.load_meta(ck)
    kind = meta.get("kind", "?")
    params = 0
    try:
        from safetensors import safe_open

        stem = "ema" if kind == "dit" else "model"
        with safe_open(str(ck / f"{stem}.safetensors"), "pt") as f:
            names = list(f.keys())  # a safetensors file is not iterable
            for k in names:
                if "latent_" not in k and "action_scale" not in k:
                    params += int(np.prod(f.get_slice(k).get_shape()))
    except (OSError, RuntimeError, ValueError):
        params = 0
    ckpts = sorted(p.name for p in (path / "checkpoints").glob("step_*")) if (path / "checkpoints").is_dir() else []
    out = {"kind": kind, "step": meta.get("step"), "params": params, "checkpoint": str(ck.name),
           "checkpoints": ckpts, "config": meta.get("train") or meta.get("config") or {},
           "stores": [{"url": s.get("url"), "digest": s.get("digest"), "episodes": s.get("episodes"),
                       "env_ids": s.get("env_ids", [])} for s in meta.get("stores", [])]}
    if kind == "dit":
        spec = meta["spec"]
        out.update(frames=meta.get("frames"), width=meta.get("width"), height=meta.get("height"),
                   fps=meta.get("fps"), action_keys=meta.get("action_spec", {}).get("flat_keys", []),
                   model=spec.get("dit", {}), vae={k: meta["vae"].get(k) for k in ("path", "digest", "val_psnr")})
        out["reward"] = (path / "reward" / "checkpoints" / "latest").is_file()
    elif kind == "vae":
        out.update(vae=meta.get("vae"), val_psnr=meta.get("val_psnr"))
    return out


def metrics_curves(path: Path, max_points: int = 600) -> dict[str, list[tuple[float, float]]]:
    """The numeric series of a run's metrics.jsonl against `step` (bad lines skipped), thinned to `max_points`."""
    series: dict[str, list[tuple[float, float]]] = {}
    f = path / "metrics.jsonl"
    if not f.is_file():
        return series
    with f.open() as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            step = rec.get("step")
            if not isinstance(step, int | float):
                continue
            for k, v in rec.items():
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
                    series.setdefault(k, []).append((float(step), float(v)))
    for k, pts in series.items():
        if len(pts) > max_points:
            idx = np.linspace(0, len(pts) - 1, max_points).round().astype(int)
            series[k] = [pts[i] for i in idx]
    return series


def eval_summary(path: Path) -> dict[str, Any]:
    """An evaluation folder (`worldsim eval out=`, or a demo / recipe folder): its numbers (eval.json or
    report.json), the report's text, plots and side-by-side videos."""
    data = json.loads((path / ("eval.json" if (path / "eval.json").is_file() else "report.json")).read_text())
    report = (path / "report.md").read_text() if (path / "report.md").is_file() else ""
    videos = [*path.glob("*.mp4"), *(path / "videos").glob("*.mp4")]
    return {"data": data if isinstance(data, dict) else {}, "report": report,
            "plots": sorted(p.name for p in path.glob("*.png")),
            "videos": sorted(p.relative_to(path).as_posix() for p in videos)}
