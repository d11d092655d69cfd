"""The on-disk dataset schema (zarr v3), owned here alone: create, write, finalize, open, validate, read, digest.

Layout (docs/dataset.md has every array and attribute):

    <store>/                     root group; attrs: schema, generator, job, env_ids, action_spec, fps, licence,
                                 finalized, digest, stats
      staging/ep_000042/         one episode while a job runs, written by exactly one worker; visible only once its
                                 `complete` attribute is set (written last)
      b_<H>x<W>/data/<key>       all episodes of one resolution concatenated along time (diffusion_policy layout)
      b_<H>x<W>/meta/<key>       episode_ends, segment bounds, quality scores, sample weights, seeds
      b_<H>x<W>/text/<key>_bytes + <key>_offsets   packed UTF-8 strings (captions, event logs as JSON)

Alignment: `actions[t]` is the action taken after observing `frames[t]`; `rewards[t]`, `terminated[t]`,
`truncated[t]` result from it. Each episode ends with its final observation, whose row has `is_last=True`, a
no-op action that was never executed, and reward 0.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

# The dataset card lives beside the arrays; zarr would warn about it on every listing.
warnings.filterwarnings("ignore", message="Object at DATASET.md is not recognized")

SCHEMA = 1
LICENCE = "procedurally generated, no third-party media"
# Chosen by measurement (benchmarks/store_codecs.py, table in docs/dataset.md): zstd-3 stores voxel frames 3.4x smaller;
# level 5 halves the write speed for 5% less space, and bitshuffle doubles the size of uint8 frames.
_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
# Staged episodes live only until finalize: lz4-1 writes and reads about twice as fast as zstd-3.
_STAGING_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")
DATA_KEYS = {"frames": np.uint8, "actions": np.float32, "rewards": np.float32, "terminated": np.bool_,
             "truncated": np.bool_, "is_last": np.bool_}
SEGMENT_QUALITY = ("quality_motion", "quality_diversity", "quality_events", "quality_caption_words")
TEXTS_PER_SEGMENT = ("segment_dense", "segment_short")
TEXTS_PER_EPISODE = ("episode_dense", "episode_short", "episode_events")


class StoreError(Exception):
    """A store is missing, corrupt, or not what the caller asked for. The message names the file or array."""


@dataclass
class Episode:
    """One recorded episode, ready to be written. Arrays share their first dimension (rows = steps + 1)."""

    index: int
    seed: int
    frames: np.ndarray  # (T, H, W, 3) uint8
    actions: np.ndarray  # (T, A) float32
    rewards: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool
    segments: np.ndarray  # (S, 2) int64 row ranges within the episode
    segment_dense: list[str]
    segment_short: list[str]
    quality: dict[str, np.ndarray]  # SEGMENT_QUALITY keys -> (S,)
    episode_dense: str
    episode_short: str
    events: list[dict[str, Any]] = field(default_factory=list)
    policy: str = ""

    @property
    def is_last(self) -> np.ndarray:
        out = np.zeros(self.frames.shape[0], dtype=bool)
        out[-1] = True
        return out


# -- packed strings ------------------------------------------------------------------------------------------
def pack_texts(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 strings as one uint8 array plus int64 offsets (readable by any zarr, no string codec needed)."""
    data = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(d) for d in data])
    return np.frombuffer(b"".join(data), dtype=np.uint8).copy(), offsets


def unpack_texts(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]


# -- writing ---------------------------------------------------------------------------------------------------
def open_root(url: str, mode: str) -> zarr.Group:
    """Open a store's root group (a path or an fsspec URL such as file:// or memory://)."""
    # file:// goes through zarr's LocalStore (as a plain path does): fsspec's local filesystem would not create
    # the folders of new groups.
    target = url[len("file://"):] if url.startswith("file://") else url
    try:
        return zarr.open_group(target, mode=mode, zarr_format=3)
    except FileNotFoundError as err:
        raise StoreError(f"no zarr store at {url}") from err
    except Exception as err:  # zarr raises many types for unreadable metadata
        raise StoreError(f"cannot open {url} as a zarr v3 store: {type(err).__name__}: {err}") from err


def _array(group: zarr.Group, name: str, data: np.ndarray, codec: BloscCodec = _CODEC) -> None:
    data = np.ascontiguousarray(data)
    rows = _rows_per_chunk(data.shape[1:], data.dtype.itemsize)
    chunks = (max(1, min(rows, len(data))), *data.shape[1:]) if data.ndim else ()
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks, compressors=codec,
                             overwrite=True)
    if data.size:
        arr[...] = data


def check_out(url: str) -> None:
    """Make sure `out=url` can hold a store without losing anything: a local path must be a missing, empty, or zarr
    folder (created here); other URLs are left to zarr. Raises StoreError naming the problem."""
    if "://" in url and not url.startswith("file://"):
        return
    path = Path(url[7:] if url.startswith("file://") else url)
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
    chunk = max(1, min(_rows_per_chunk((height, width, 3), 1), rows))
    return g.create_array("frames", shape=(rows, height, width, 3), dtype=np.uint8, chunks=(chunk, height, width, 3),
                          compressors=_STAGING_CODEC)


def write_staged_episode(root: zarr.Group, ep: Episode) -> None:
    """Write one episode under staging/; it becomes visible (complete) only when everything else is written.
    `ep.frames` may be this episode's array from `stage_frames`, already filled: it is kept as it is."""
    name = f"ep_{ep.index:06d}"
    kept = isinstance(ep.frames, zarr.Array) and ep.frames.path == f"staging/{name}/frames"
    g = root["staging"][name] if kept else root.require_group("staging").create_group(name, overwrite=True)
    for key in DATA_KEYS:
        if key == "frames" and kept:
            continue
        _array(g, key, ep.is_last if key == "is_last" else getattr(ep, key), _STAGING_CODEC)
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
    """Concatenate the staged episodes 0..episodes-1 into resolution buckets, write texts, digest; drop staging."""
    staged = staged_episodes(root)
    missing = [i for i in range(episodes) if i not in staged]
    if missing:
        raise StoreError(f"cannot finalize: episodes {missing[:10]} are not complete")
    buckets: dict[tuple[int, int], list[int]] = {}
    for i in range(episodes):
        h, w = staged[i]["frames"].shape[1:3]
        buckets.setdefault((int(h), int(w)), []).append(i)
    for (h, w), idxs in buckets.items():
        _write_bucket(root.create_group(f"b_{h}x{w}", overwrite=True), [staged[i] for i in idxs], idxs)
    stats = compute_stats(root)
    root.attrs.update({"finalized": True, "stats": stats})
    del root["staging"]
    root.attrs["digest"] = digest(root)
    return stats


def _write_bucket(b: zarr.Group, eps: list[zarr.Group], indices: list[int]) -> None:
    data, meta, text = b.create_group("data"), b.create_group("meta"), b.create_group("text")
    lengths = [e["frames"].shape[0] for e in eps]
    ends = np.cumsum(lengths).astype(np.int64)
    starts = ends - np.array(lengths)
    for key, dtype in DATA_KEYS.items():
        first = eps[0][key]
        rows = _rows_per_chunk(first.shape[1:], np.dtype(dtype).itemsize)
        arr = data.create_array(key, shape=(int(ends[-1]), *first.shape[1:]), dtype=dtype, compressors=_CODEC,
                                chunks=(rows, *first.shape[1:]))
        write_aligned(arr, (e[key][...] for e in eps), rows)
    _array(meta, "episode_ends", ends)
    _array(meta, "episode_index", np.array(indices, dtype=np.int64))
    _array(meta, "episode_seed", np.array([e.attrs["seed"] for e in eps], dtype=np.int64))
    seg = [np.asarray(e.attrs["segments"], np.int64).reshape(-1, 2) + a for e, a in zip(eps, starts)]
    _array(meta, "segment_bounds", np.concatenate(seg).astype(np.int64))
    _array(meta, "segment_episode", np.concatenate([np.full(len(s), k, np.int64) for k, s in enumerate(seg)]))
    quality = {k: np.concatenate([np.asarray(e.attrs["quality"][k], np.float32) for e in eps]) for k in SEGMENT_QUALITY}
    for k, v in quality.items():
        _array(meta, k, v)
    _array(meta, "sample_weight", sample_weights(quality))
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
        _array(text, f"{key}_bytes", raw)
        _array(text, f"{key}_offsets", off)


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


def _rows_per_chunk(row_shape: tuple[int, ...], itemsize: int) -> int:
    """Rows per chunk: about 512 KB of data. Random 16-frame training windows then decode ~42 frames at 64x64
    instead of ~170 with 2 MB chunks (2x the window read speed), at the same compression ratio."""
    row = max(1, int(np.prod(row_shape)) * itemsize)
    return int(np.clip(2**19 // row, 1, 65536))


# -- reading ---------------------------------------------------------------------------------------------------
def buckets(root: zarr.Group) -> list[str]:
    return sorted(name for name, _ in root.groups() if name.startswith("b_"))


def _arrays(group: zarr.Group, prefix: str = "") -> Iterator[tuple[str, zarr.Array]]:
    for name, arr in sorted(group.arrays()):
        yield prefix + name, arr
    for name, sub in sorted(group.groups()):
        yield from _arrays(sub, f"{prefix}{name}/")


def digest(root: zarr.Group) -> str:
    """sha256 of every array's dtype, shape and decoded bytes, in path order: independent of chunking,
    compression and attributes (timestamps, paths), so equal content gives an equal digest."""
    h = hashlib.sha256()
    for path, arr in _arrays(root):
        if path.startswith("staging/"):
            continue
        h.update(f"{path}|{arr.dtype}|{arr.shape}\n".encode())
        rows = max(1, _rows_per_chunk(arr.shape[1:], arr.dtype.itemsize) * 8) if arr.ndim else 1
        for a in range(0, max(arr.shape[0], 1) if arr.ndim else 1, rows):
            h.update(np.ascontiguousarray(arr[a : a + rows] if arr.ndim else arr[...]).tobytes())
    return h.hexdigest()


def read_texts(bucket: zarr.Group, key: str) -> list[str]:
    return unpack_texts(bucket[f"text/{key}_bytes"][...], bucket[f"text/{key}_offsets"][...])


def _read_text_range(bucket: zarr.Group, key: str, a: int, b: int) -> list[str]:
    """Strings a..b-1 of a packed text array, reading only their bytes."""
    off = bucket[f"text/{key}_offsets"][a : b + 1]
    raw = bucket[f"text/{key}_bytes"][int(off[0]) : int(off[-1])]
    return unpack_texts(raw, off - off[0])


def open_store(root_or_url: zarr.Group | str) -> zarr.Group:
    """The root group of a finalized worldsim store, read-only; StoreError (naming the store) if it is not one."""
    if isinstance(root_or_url, zarr.Group):
        root, url = root_or_url, str(root_or_url.store)
    else:
        root, url = open_root(str(root_or_url), "r"), str(root_or_url)
    schema = root.attrs.get("worldsim_schema")
    if schema != SCHEMA:
        raise StoreError(f"{url} is not a worldsim store (schema {schema!r}, expected {SCHEMA})")
    if not root.attrs.get("finalized"):
        raise StoreError(f"{url} is not finalized (its generate job did not finish; run the same command again)")
    return root


def episode_indices(root_or_url: zarr.Group | str) -> list[int]:
    """The job episode indices a finalized store holds, sorted (reads only `meta/episode_index`)."""
    root = open_store(root_or_url)
    return sorted(int(i) for name in buckets(root) for i in root[name]["meta/episode_index"][...])


def _span(indices: list[int]) -> str:
    indices = sorted(indices)
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}..{indices[-1]}"
    return ", ".join(map(str, indices[:20])) + (" ..." if len(indices) > 20 else "")


def read_episode(root_or_url: zarr.Group | str, index: int) -> dict[str, Any]:
    """One episode of a store by its job episode index (`meta/episode_index`), reading only its rows.

    Returns a dict with `index`, `seed`, `bucket` (`b_<H>x<W>`), `fps`, `action_spec` (the root attribute) and
    `action_keys` (its `flat_keys`: the names of the action columns); the per-row arrays `frames` (T, H, W, 3)
    uint8, `actions` (T, A) float32, `rewards`, `terminated`, `truncated`, `is_last` (T,); the per-segment
    `segments` (S, 2) row ranges within the episode, `segment_dense`, `segment_short`, `sample_weight` (S,); and
    `episode_dense`, `episode_short`, `policy`, `events` (a list of dicts).
    Alignment as everywhere: `actions[t]` is taken after observing `frames[t]`.

    Raises:
        StoreError: the store is missing or not a finalized worldsim store, or has no episode `index` (the message
            gives the episodes it holds).
    """
    root = open_store(root_or_url)
    held: list[int] = []
    for name in buckets(root):
        b = root[name]
        idx = b["meta/episode_index"][...]
        hit = np.flatnonzero(idx == index)
        if len(hit) == 0:
            held += idx.tolist()
            continue
        k = int(hit[0])
        ends = b["meta/episode_ends"][...]
        start, end = (int(ends[k - 1]) if k else 0), int(ends[k])
        seg_ids = np.flatnonzero(b["meta/segment_episode"][...] == k)
        s0, s1 = int(seg_ids[0]), int(seg_ids[-1]) + 1  # an episode's segments are contiguous
        spec = dict(root.attrs.get("action_spec", {}))
        out: dict[str, Any] = {"index": int(index), "seed": int(b["meta/episode_seed"][k]), "bucket": name,
                               "fps": root.attrs.get("fps"), "action_spec": spec,
                               "action_keys": list(spec.get("flat_keys", []))}
        for key in DATA_KEYS:
            out[key] = b[f"data/{key}"][start:end]
        out["segments"] = b["meta/segment_bounds"][s0:s1] - start
        out["sample_weight"] = b["meta/sample_weight"][s0:s1]
        for key in TEXTS_PER_SEGMENT:
            out[key] = _read_text_range(b, key, s0, s1)
        for key in ("episode_dense", "episode_short"):
            out[key] = _read_text_range(b, key, k, k + 1)[0]
        out["policy"] = _read_text_range(b, "episode_policy", k, k + 1)[0]
        out["events"] = json.loads(_read_text_range(b, "episode_events", k, k + 1)[0])
        return out
    where = f"holds episodes {_span(held)}" if held else "holds no episodes"
    raise StoreError(f"episode {index} is not in {root_or_url if isinstance(root_or_url, str) else root.store}: "
                     f"it {where}")


def compute_stats(root: zarr.Group) -> dict[str, Any]:
    """Counts and action statistics (how often each key is pressed; camera spread) over all buckets."""
    spec = root.attrs.get("action_spec", {})
    keys = spec.get("flat_keys") or [f"a{i}" for i in range(root[buckets(root)[0]]["data/actions"].shape[1])]
    acts = np.concatenate([root[b]["data/actions"][...][~root[b]["data/is_last"][...]] for b in buckets(root)])
    per_key = {}
    for i, k in enumerate(keys):
        col = acts[:, i].astype(np.float64)
        per_key[k] = {"mean": round(float(col.mean()), 4), "std": round(float(col.std()), 4),
                      "nonzero": round(float((col != 0).mean()), 4)}
    frames = sum(root[b]["data/frames"].shape[0] for b in buckets(root))
    episodes = sum(root[b]["meta/episode_ends"].shape[0] for b in buckets(root))
    return {"episodes": int(episodes), "frames": int(frames), "actions": per_key,
            "resolutions": [b[2:] for b in buckets(root)]}


# -- validation ------------------------------------------------------------------------------------------------
def _need(group: zarr.Group, path: str, where: str) -> zarr.Array:
    try:
        return group[path]
    except KeyError:
        raise StoreError(f"{where}/{path} is missing") from None


def validate(url: str) -> dict[str, Any]:
    """Check a store against the schema and its digest. Returns a summary; raises StoreError naming the problem."""
    root = open_root(url, "r")
    attrs = dict(root.attrs)
    if attrs.get("worldsim_schema") != SCHEMA:
        raise StoreError(f"{url} is not a worldsim store (schema {attrs.get('worldsim_schema')!r}, expected {SCHEMA})")
    if not attrs.get("finalized"):
        raise StoreError(f"{url} is not finalized (its generate job did not finish; run the same command again)")
    names = buckets(root)
    if not names:
        raise StoreError(f"{url} has no resolution buckets (b_<H>x<W>)")
    episodes = frames = 0
    for name in names:
        episodes_b, frames_b = _validate_bucket(root[name], f"{url}/{name}", name)
        episodes += episodes_b
        frames += frames_b
    try:
        actual = digest(root)
    except Exception as err:  # a truncated or corrupt chunk surfaces here
        raise StoreError(f"{url}: cannot read every array ({type(err).__name__}: {err})") from err
    if actual != attrs.get("digest"):
        raise StoreError(f"{url}: content digest {actual[:12]}... does not match the recorded "
                         f"{str(attrs.get('digest'))[:12]}... (the store was modified or corrupted)")
    return {"valid": True, "episodes": episodes, "frames": frames, "resolutions": [n[2:] for n in names],
            "env_ids": attrs.get("env_ids", []), "digest": actual, "fps": attrs.get("fps"),
            "actions": attrs.get("stats", {}).get("actions", {})}


def _validate_bucket(b: zarr.Group, where: str, name: str) -> tuple[int, int]:
    h, w = (int(v) for v in name[2:].split("x"))
    n = None
    for key, dtype in DATA_KEYS.items():
        arr = _need(b, f"data/{key}", where)
        if arr.dtype != np.dtype(dtype):
            raise StoreError(f"{where}/data/{key} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        n = arr.shape[0] if n is None else n
        if arr.shape[0] != n:
            raise StoreError(f"{where}/data/{key} has {arr.shape[0]} rows, data/frames has {n}")
    if tuple(b["data/frames"].shape[1:]) != (h, w, 3):
        raise StoreError(f"{where}/data/frames has frame shape {b['data/frames'].shape[1:]}, expected ({h}, {w}, 3)")
    ends = _need(b, "meta/episode_ends", where)[...]
    if len(ends) == 0 or np.any(np.diff(ends) <= 0) or ends[0] <= 0 or ends[-1] != n:
        raise StoreError(f"{where}/meta/episode_ends must increase strictly and end at {n} rows")
    is_last = b["data/is_last"][...]
    if not np.array_equal(np.flatnonzero(is_last), ends - 1):
        raise StoreError(f"{where}/data/is_last must be true exactly on each episode's final row")
    seg = _need(b, "meta/segment_bounds", where)[...]
    starts = np.concatenate([[0], ends[:-1]])
    ep_of = np.searchsorted(ends, seg[:, 0], side="right")
    if seg.ndim != 2 or np.any(seg[:, 0] >= seg[:, 1]) or np.any(seg[:, 1] > ends[np.minimum(ep_of, len(ends) - 1)]):
        raise StoreError(f"{where}/meta/segment_bounds must be non-empty row ranges inside one episode")
    if np.any(seg[:, 0] < starts[np.minimum(ep_of, len(ends) - 1)]):
        raise StoreError(f"{where}/meta/segment_bounds must be non-empty row ranges inside one episode")
    for key in (*SEGMENT_QUALITY, "sample_weight", "segment_episode"):
        arr = _need(b, f"meta/{key}", where)
        if arr.shape != (len(seg),):
            raise StoreError(f"{where}/meta/{key} has shape {arr.shape}, expected ({len(seg)},)")
    for key, count in (*((k, len(seg)) for k in TEXTS_PER_SEGMENT), *((k, len(ends)) for k in TEXTS_PER_EPISODE)):
        off = _need(b, f"text/{key}_offsets", where)[...]
        data = _need(b, f"text/{key}_bytes", where)
        if len(off) != count + 1 or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != data.shape[0]:
            raise StoreError(f"{where}/text/{key}_offsets does not index {count} strings in text/{key}_bytes")
        try:
            unpack_texts(data[...], off)
        except UnicodeDecodeError as err:
            raise StoreError(f"{where}/text/{key}_bytes is not valid UTF-8 ({err})") from err
    return len(ends), n
