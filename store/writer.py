"""Writing a store: create or resume a job's store, stage one episode per worker, finalize into buckets.

Workers never append to the same array: each episode is staged in its own group and becomes visible only once its
`complete` attribute is set (written last); `finalize` alone writes the buckets, the index and the digest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from store.read import compute_stats, digest
from store.schema import (
    ALL_CHUNKS,
    ARRAY_CONFIG,
    CODEC,
    DATA_KEYS,
    SCHEMA,
    SEGMENT_QUALITY,
    STAGING_CODEC,
    Episode,
    StoreError,
    open_root,
    pack_texts,
    rows_per_chunk,
)


def local_path(url: str) -> Path | None:
    """The folder of a local store (a path or a file:// URL); None for memory:// and remote stores."""
    if "://" in url and not url.startswith("file://"):
        return None
    return Path(url[7:] if url.startswith("file://") else url)


def _owner(lock: Path) -> dict[str, Any]:
    try:
        owner = json.loads(lock.read_text())
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _stale(lock: Path, owner: dict[str, Any]) -> bool:
    """Whether a lock can be taken over: its owner is a process of this host that no longer runs, or it was never
    filled in (its writer died between creating and writing it) and is over 10 seconds old."""
    if not owner:
        try:
            return time.time() - lock.stat().st_mtime > 10
        except FileNotFoundError:  # released meanwhile
            return True
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


@contextlib.contextmanager
def writer_lock(url: str, wait: bool = False, poll: float = 0.5) -> Iterator[None]:
    """One writer per store: an advisory lock file held while a job writes `url`, `.<name>.writer.lock` beside the
    store folder (outside it: a job may rewrite the folder whole), created exclusively, holding the owner's pid,
    host and start time.

    A second run into the same store is refused at once with a StoreError naming the owner (pid, host, since when),
    or with `wait=True` waits until the owner is done. A lock left by a process of this host that no longer runs (a
    killed job) is taken over, so a rerun after a kill always resumes. Local stores only: memory:// and remote URLs
    are not locked (zarr has no portable lock there; give each writer its own out).
    """
    folder = local_path(url)
    if folder is None:
        yield
        return
    folder = folder.resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = folder.parent / f".{folder.name}.writer.lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            if _stale(lock, owner):
                lock.unlink(missing_ok=True)  # a killed job's lock: take over
                continue
            if not wait:
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
                raise StoreError(f"out={url} is being written by another run (pid {owner.get('pid')} on "
                                 f"{owner.get('host')}, since {since}); wait for it to finish, pass wait=true to "
                                 f"queue behind it, or choose another out (if no such run exists, delete "
                                 f"{lock})") from None
            time.sleep(poll)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        if _owner(lock).get("pid") == me["pid"]:
            lock.unlink(missing_ok=True)


def write_array(group: zarr.Group, name: str, data: np.ndarray, codec: BloscCodec = CODEC) -> None:
    data = np.ascontiguousarray(data)
    rows = rows_per_chunk(data.shape[1:], data.dtype.itemsize)
    chunks = (max(1, min(rows, len(data))), *data.shape[1:]) if data.ndim else ()
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks, compressors=codec,
                             overwrite=True, config=ARRAY_CONFIG)
    if data.size:
        arr[...] = data


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def free_space(path: Path) -> tuple[Path, int]:
    """(the nearest existing folder at or above `path`, the bytes free on its file system)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free


def check_space(url: str, frames: int, height: int, width: int, ratio: float = 10.0) -> None:
    """Refuse at once a job that cannot fit: `frames` RGB frames compressed `ratio` times (more than any store
    measured here: 3.4x for voxel frames) against the free space where `url` would be written. Local paths only.

    Raises:
        StoreError: naming the space needed, the space free, and where.
    """
    path = local_path(url)
    if path is None:
        return
    probe, free = free_space(path)
    need = frames * height * width * 3 / ratio
    if need > free:
        raise StoreError(f"out={url} needs at least {_size(need)} ({frames:,} frames of {width}x{height}, even "
                         f"compressed {ratio:g}x) and {_size(free)} is free on {probe}; ask for fewer episodes or "
                         f"steps, or write elsewhere")


def discard_unused(url: str) -> bool:
    """Remove the store a failed command created at `url` if it holds nothing worth keeping (not finalized, no
    complete staged episode), so the corrected command finds `out` as the user left it. Local paths only; returns
    whether it removed anything. Callers pass only a `url` that did not exist before they ran."""
    path = local_path(url)
    if path is None or not (path / "zarr.json").is_file():
        return False
    try:
        root = open_root(url, "r")
    except StoreError:
        return False
    if root.attrs.get("finalized") or staged_episodes(root):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def check_out(url: str) -> None:
    """Make sure `out=url` can hold a store without losing anything: a local path must be a missing, empty, or zarr
    folder (created here); other URLs are left to zarr. Raises StoreError naming the problem."""
    path = local_path(url)
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise StoreError(f"out={url} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
        raise StoreError(f"out={url} is a non-empty directory that is not a worldsim store; choose another")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"out={url} cannot be created: {err.strerror}") from err


def create_or_resume(url: str, key: str, job: dict[str, Any], make_attrs: Callable[[], dict[str, Any]]
                     ) -> zarr.Group:
    """Open the store of the job identified by `key` for writing: create it (root attributes `job` plus what
    `make_attrs()` returns, called only then), or reopen it to resume the same job. Used by generate's runner and
    the importers.

    Raises:
        StoreError: `url` is a file, a non-empty directory that is not a store, or a store made with other settings.
    """
    check_out(url)
    root = open_root(url, "a")
    if "job_key" in root.attrs and root.attrs["job_key"] != key:
        old = root.attrs.get("job", {})
        diff = sorted(k for k in set(old) | set(job) if old.get(k) != job.get(k))
        raise StoreError(f"out={url} holds a store made with other settings (differs in: {', '.join(diff)}); "
                         f"use another out, or delete it")
    if "job_key" not in root.attrs:
        root.attrs.update({"worldsim_schema": SCHEMA, "job_key": key, "job": job, **make_attrs(), "finalized": False})
    if not root.attrs.get("finalized"):
        root.require_group("staging")
    return root


def stage_frames(root: zarr.Group, index: int, rows: int, height: int, width: int) -> zarr.Array:
    """A fresh staged episode `index` holding an empty frames array (rows, height, width, 3) uint8, for writers
    that stream long videos in blocks; pass it back as `Episode.frames` and `write_staged_episode` keeps it."""
    g = root.require_group("staging").create_group(f"ep_{index:06d}", overwrite=True)
    chunk = max(1, min(rows_per_chunk((height, width, 3), 1), rows))
    return g.create_array("frames", shape=(rows, height, width, 3), dtype=np.uint8, chunks=(chunk, height, width, 3),
                          compressors=STAGING_CODEC, config=ARRAY_CONFIG)


def write_staged_episode(root: zarr.Group, ep: Episode) -> None:
    """Write one episode under staging/; it becomes visible (complete) only when everything else is written.
    `ep.frames` may be this episode's array from `stage_frames`, already filled: it is kept as it is."""
    name = f"ep_{ep.index:06d}"
    kept = isinstance(ep.frames, zarr.Array) and ep.frames.path == f"staging/{name}/frames"
    g = root["staging"][name] if kept else root.require_group("staging").create_group(name, overwrite=True)
    for key in DATA_KEYS:
        if key == "frames" and kept:
            continue
        write_array(g, key, ep.is_last if key == "is_last" else getattr(ep, key), STAGING_CODEC)
    if ep.task_state is not None:
        if ep.task_state.shape != (len(ep.frames), len(ep.task_state_keys)):
            raise StoreError(f"episode {ep.index}: task_state has shape {ep.task_state.shape}, expected "
                             f"({len(ep.frames)}, {len(ep.task_state_keys)}) (one row per frame, one column per key)")
        write_array(g, "task_state", np.asarray(ep.task_state, np.float32), STAGING_CODEC)
        g.attrs["task_state_keys"] = list(ep.task_state_keys)
    # per-segment values are a few numbers: attributes cost one small write instead of an array each
    quality = {k: [float(v) for v in np.asarray(ep.quality[k], np.float32)] for k in SEGMENT_QUALITY}
    g.attrs.update({"seed": int(ep.seed), "policy": ep.policy, "segments": ep.segments.astype(int).tolist(),
                    "quality": quality, "segment_dense": ep.segment_dense,
                    "segment_short": ep.segment_short, "episode_dense": ep.episode_dense,
                    "episode_short": ep.episode_short, "events": ep.events})
    g.attrs["complete"] = True  # last: an episode without it is discarded and redone on resume


def staged_episodes(root: zarr.Group) -> dict[int, zarr.Group]:
    """Complete staged episodes by index."""
    if "staging" not in root:
        return {}
    out = {}
    for name, g in root["staging"].groups():
        if name.startswith("ep_") and g.attrs.get("complete"):
            out[int(name[3:])] = g
    return out


def sample_weights(quality: dict[str, np.ndarray]) -> np.ndarray:
    """Sampling weight per segment from its quality scores, mean 1: more motion, variety and events weigh more.

    w = (0.25 + motion rank) * (0.25 + diversity rank) * (1 + log1p(events)), normalised. Ranks (in [0, 1]) make the
    weights independent of each score's scale."""
    n = len(quality["quality_motion"])
    if n == 0:
        return np.zeros(0, np.float32)

    def rank(x: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(x, kind="stable"), kind="stable") / max(n - 1, 1)

    w = (0.25 + rank(quality["quality_motion"])) * (0.25 + rank(quality["quality_diversity"]))
    w = w * (1.0 + np.log1p(np.asarray(quality["quality_events"], dtype=np.float64)))
    return (w / w.mean()).astype(np.float32)


def finalize(root: zarr.Group, episodes: int) -> dict[str, Any]:
    """Concatenate the staged episodes 0..episodes-1 into resolution buckets, write texts, digest; drop staging.

    Crash-consistent: every step is idempotent (buckets are rewritten whole), and the store is marked finalized only
    in the one attribute write that also records its statistics and digest, after everything they describe is on
    disk. A kill at any moment leaves a store that is either not finalized (a rerun finalizes it again, to the same
    digest) or finalized and complete, with at most a leftover staging group that the rerun removes."""
    staged = staged_episodes(root)
    missing = [i for i in range(episodes) if i not in staged]
    if missing:
        raise StoreError(f"cannot finalize: episodes {missing[:10]} are not complete")
    keys = {tuple(staged[i].attrs.get("task_state_keys") or ()) for i in range(episodes)}
    task_state = len(keys) == 1 and keys != {()}  # kept when every episode has the same task state
    if task_state:
        root.attrs["task_state_keys"] = list(keys.pop())
    buckets: dict[tuple[int, int], list[int]] = {}
    for i in range(episodes):
        h, w = staged[i]["frames"].shape[1:3]
        buckets.setdefault((int(h), int(w)), []).append(i)
    for (h, w), idxs in buckets.items():
        _write_bucket(root.create_group(f"b_{h}x{w}", overwrite=True), [staged[i] for i in idxs], idxs, task_state)
    stats = compute_stats(root)
    root.attrs.update({"stats": stats, "digest": digest(root), ALL_CHUNKS: True, "finalized": True})  # last, one write
    if "staging" in root:
        del root["staging"]
    return stats


def _write_bucket(b: zarr.Group, eps: list[zarr.Group], indices: list[int], task_state: bool = False) -> None:
    data, meta, text = b.create_group("data"), b.create_group("meta"), b.create_group("text")
    lengths = [e["frames"].shape[0] for e in eps]
    ends = np.cumsum(lengths).astype(np.int64)
    starts = ends - np.array(lengths)
    for key, dtype in DATA_KEYS.items():
        first = eps[0][key]
        rows = rows_per_chunk(first.shape[1:], np.dtype(dtype).itemsize)
        arr = data.create_array(key, shape=(int(ends[-1]), *first.shape[1:]), dtype=dtype, compressors=CODEC,
                                chunks=(rows, *first.shape[1:]), config=ARRAY_CONFIG)
        write_aligned(arr, (e[key][...] for e in eps), rows)
    if task_state:
        write_array(data, "task_state", np.concatenate([e["task_state"][...] for e in eps]).astype(np.float32))
    write_array(meta, "episode_ends", ends)
    write_array(meta, "episode_index", np.array(indices, dtype=np.int64))
    write_array(meta, "episode_seed", np.array([e.attrs["seed"] for e in eps], dtype=np.int64))
    seg = [np.asarray(e.attrs["segments"], np.int64).reshape(-1, 2) + a for e, a in zip(eps, starts)]
    write_array(meta, "segment_bounds", np.concatenate(seg).astype(np.int64))
    write_array(meta, "segment_episode", np.concatenate([np.full(len(s), k, np.int64) for k, s in enumerate(seg)]))
    quality = {k: np.concatenate([np.asarray(e.attrs["quality"][k], np.float32) for e in eps]) for k in SEGMENT_QUALITY}
    for k, v in quality.items():
        write_array(meta, k, v)
    write_array(meta, "sample_weight", sample_weights(quality))
    texts = {
        "segment_dense": [t for e in eps for t in e.attrs["segment_dense"]],
        "segment_short": [t for e in eps for t in e.attrs["segment_short"]],
        "episode_dense": [e.attrs["episode_dense"] for e in eps],
        "episode_short": [e.attrs["episode_short"] for e in eps],
        "episode_events": [json.dumps(e.attrs["events"], sort_keys=True) for e in eps],
        "episode_policy": [e.attrs["policy"] for e in eps],
    }
    for key, values in texts.items():
        raw, off = pack_texts(values)
        write_array(text, f"{key}_bytes", raw)
        write_array(text, f"{key}_offsets", off)


def write_aligned(arr: zarr.Array, parts: Iterator[np.ndarray], rows: int, block_chunks: int = 4) -> None:
    """Concatenate `parts` along rows into `arr`, writing whole chunks only: episodes rarely end on a chunk
    boundary, and a partial chunk write would decode and re-encode that chunk (twice the compression work)."""
    buf: list[np.ndarray] = []
    held = written = 0
    for part in parts:
        buf.append(part)
        held += len(part)
        if held >= rows * block_chunks:
            block = np.concatenate(buf)
            n = held - held % rows
            arr[written : written + n] = block[:n]
            written, buf, held = written + n, [block[n:]], held - n
    if held:
        arr[written : written + held] = np.concatenate(buf)
