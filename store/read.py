"""Reading a store: open (refusing unfinished or foreign stores), episodes, texts, the digest, statistics, validate."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import zarr
from gymnasium import spaces as gym_spaces

from store.schema import (
    ALL_CHUNKS,
    DATA_KEYS,
    SCHEMA,
    SEGMENT_QUALITY,
    TEXTS_PER_EPISODE,
    TEXTS_PER_SEGMENT,
    MissingChunk,
    StoreError,
    buckets,
    open_root,
    rows_per_chunk,
    unpack_texts,
)
from store.spaces import flat_size, key_order, space_from_spec


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
        rows = max(1, rows_per_chunk(arr.shape[1:], arr.dtype.itemsize) * 8) if arr.ndim else 1
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
    `episode_dense`, `episode_short`, `policy`, `events` (a list of dicts); where the store records the task's
    state, `task_state` (T, K) float32 and `task_state_keys`.
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
        if root.attrs.get("task_state_keys"):  # optional (docs/dataset.md)
            out["task_state"] = b["data/task_state"][start:end]
            out["task_state_keys"] = list(root.attrs["task_state_keys"])
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
    columns = _validate_action_spec(attrs.get("action_spec"), url)
    latent = "latents" in attrs
    episodes = frames = 0
    for name in names:
        episodes_b, frames_b = _validate_bucket(root[name], f"{url}/{name}", name, columns, latent,
                                                len(root.attrs.get("task_state_keys") or ()))
        episodes += episodes_b
        frames += frames_b
    actual = _checked_digest(root, url)
    return {"valid": True, "episodes": episodes, "frames": frames, "resolutions": [n[2:] for n in names],
            "env_ids": attrs.get("env_ids", []), "digest": actual, "fps": attrs.get("fps"),
            "actions": attrs.get("stats", {}).get("actions", {}),
            # False for a store of an older worldsim: a missing chunk there reads as zeros, and only the digest
            # check (which every reader of training data runs) notices lost data
            "all_chunks_written": bool(attrs.get(ALL_CHUNKS))}


def verify_digest(url: str) -> str:
    """Read every array of a finalized store and check it against the digest it records; return the digest. Training
    commands call it before they record a store's digest as their provenance (about 30k frames/s here: a second for
    the reference recipe's store). Raises StoreError when a chunk is missing or the content changed."""
    return _checked_digest(open_store(url), url)


def _checked_digest(root: zarr.Group, url: str) -> str:
    try:
        actual = digest(root)
    except MissingChunk:
        raise
    except Exception as err:  # a truncated or corrupt chunk surfaces here
        raise StoreError(f"{url}: cannot read every array ({type(err).__name__}: {err})") from err
    if actual != root.attrs.get("digest"):
        raise StoreError(f"{url}: content digest {actual[:12]}... does not match the recorded "
                         f"{str(root.attrs.get('digest'))[:12]}... (the store was modified or damaged)")
    return actual


def _validate_action_spec(spec: Any, url: str) -> int:
    """The number of action columns the store's `action_spec` describes; StoreError if it describes no valid space
    or its `flat_keys` do not name every column."""
    if not isinstance(spec, dict):
        raise StoreError(f"{url}: action_spec must be an object describing the action space (store/spaces.py), got "
                         f"{type(spec).__name__} {str(spec)[:60]!r}")
    try:
        space = space_from_spec(spec)
        columns = flat_size(spec)
        keys = spec.get("flat_keys")
        if keys is not None and isinstance(space, gym_spaces.Dict):
            key_order(spec, space)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise StoreError(f"{url}: action_spec describes no valid action space ({type(err).__name__}: {err})") from None
    if keys is not None and (not isinstance(keys, list) or len(keys) != columns):
        raise StoreError(f"{url}: action_spec names {len(keys) if isinstance(keys, list) else keys!r} flat_keys for "
                         f"{columns} action columns")
    return columns


def _validate_bucket(b: zarr.Group, where: str, name: str, columns: int, latent: bool,
                     task_columns: int = 0) -> tuple[int, int]:
    h, w = (int(v) for v in name[2:].split("x"))
    n = None
    pixels = "latents" if latent else "frames"
    kinds = {pixels: np.float16 if latent else np.uint8, **{k: v for k, v in DATA_KEYS.items() if k != "frames"}}
    for key, dtype in kinds.items():
        arr = _need(b, f"data/{key}", where)
        if arr.dtype != np.dtype(dtype):
            raise StoreError(f"{where}/data/{key} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        n = arr.shape[0] if n is None else n
        if arr.shape[0] != n:
            raise StoreError(f"{where}/data/{key} has {arr.shape[0]} rows, data/{pixels} has {n}")
    shape = tuple(b[f"data/{pixels}"].shape[1:])
    if not latent and shape != (h, w, 3):
        raise StoreError(f"{where}/data/frames has frame shape {shape}, expected ({h}, {w}, 3)")
    if latent and len(shape) != 3:
        raise StoreError(f"{where}/data/latents has latent shape {shape}, expected (channels, height, width)")
    if task_columns:  # optional: the task's state per frame, one column per root `task_state_keys` entry
        arr = _need(b, "data/task_state", where)
        if arr.dtype != np.float32 or arr.shape != (n, task_columns):
            raise StoreError(f"{where}/data/task_state is {arr.dtype} {arr.shape}, expected float32 ({n}, "
                             f"{task_columns}) (one column per task_state_keys entry)")
    for key in ("actions", "rewards") + (("task_state",) if task_columns else ()):
        values = b[f"data/{key}"][...]
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
            raise StoreError(f"{where}/data/{key} has a non-finite value (row {row})")
    if b["data/actions"].shape[1:] != (columns,):
        raise StoreError(f"{where}/data/actions has shape {b['data/actions'].shape}, but the action_spec describes "
                         f"{columns} columns")
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
