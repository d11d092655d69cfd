"""Read training windows from finalized stores: T consecutive frames of one episode with their actions and captions.

`WindowReader` indexes every window that fits inside an episode, in every resolution bucket, and reads them either
from memory (the decoded arrays of a bucket, when they fit the memory budget) or through a small LRU cache of
decoded chunks (random windows then cost about one chunk decode each, instead of one per frame).

    reader = WindowReader("data/voxel64", window=16)
    w = reader.read(123)            # dict: frames (16, H, W, 3) uint8, actions (16, A) float32, captions, weight
    idx = reader.sample(rng, 64)    # window indices drawn by segment quality weight

Latent stores (`store/latents.py`) read the same way, with `latents` (T, C, h, w) float16 in place of `frames`.
A window is aligned like the store: `actions[t]` is taken after `frames[t]`; its last action is often the
episode-final no-op (`is_last[t]` says so), which a model predicting frame t+1 never needs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from store import StoreError, buckets, open_store, read_texts

_ROW_KEYS = ("frames", "actions", "rewards", "terminated", "is_last")


@dataclass(frozen=True)
class Bucket:
    """Windows of one (height, width) bucket: rows [start, start + window) for each index."""

    name: str
    height: int
    width: int
    starts: np.ndarray  # (N,) int64 first row of each window
    episode: np.ndarray  # (N,) int64 job episode index of each window
    segment: np.ndarray  # (N,) int64 bucket-local segment holding the window's first row
    weight: np.ndarray  # (N,) float64 sampling weight (the segment's, spread over its windows)
    episode_start: np.ndarray  # (N,) int64 first row of each window's episode


class _Rows:
    """Row access to one bucket's data arrays: whole arrays in memory, or per array an LRU cache of decoded chunks
    (the small arrays, one chunk each, then stay decoded; frames cost about one chunk decode per random window)."""

    def __init__(self, group: zarr.Group, in_memory: bool, cache_chunks: int, keys: tuple[str, ...]) -> None:
        self.arrays = {k: group[f"data/{k}"] for k in keys}
        self.memory = {k: a[...] for k, a in self.arrays.items()} if in_memory else None
        self.cache: dict[str, OrderedDict[int, np.ndarray]] = {k: OrderedDict() for k in keys}
        self.cache_chunks = max(1, cache_chunks)

    def read(self, key: str, a: int, z: int) -> np.ndarray:
        if self.memory is not None:
            return self.memory[key][a:z]
        rows = self.arrays[key].chunks[0]
        parts = []
        for c in range(a // rows, (z - 1) // rows + 1):
            block = self._chunk(key, c, rows)
            lo, hi = max(a, c * rows) - c * rows, min(z, (c + 1) * rows) - c * rows
            parts.append(block[lo:hi])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _chunk(self, key: str, c: int, rows: int) -> np.ndarray:
        cache = self.cache[key]
        hit = cache.get(c)
        if hit is not None:
            cache.move_to_end(c)
            return hit
        block = self.arrays[key][c * rows : (c + 1) * rows]
        cache[c] = block
        if len(cache) > self.cache_chunks:
            cache.popitem(last=False)
        return block


class WindowReader:
    """Random-access windows of `window` frames over one finalized store.

    Args:
        url: the store (a path or an fsspec URL).
        window: frames per window (T >= 1); episodes shorter than T contribute no windows.
        stride: distance between consecutive window starts within an episode.
        memory_limit: decode whole buckets into memory when their frames fit in this many bytes (0: never).
        cache_chunks: decoded chunks kept per array when a bucket is not held in memory.
        buckets_only: restrict to these bucket names (e.g. ["b_64x64"]).
        episodes: keep only windows of these job episode indices (e.g. a held-out split); None keeps all.
        history: also read up to this many rows of the same episode before each window (`past_*` keys, padded in
            front where the episode starts later, `past_valid` saying which rows exist): what a model with memory
            may recall. Windows still start anywhere in an episode.

    Raises:
        StoreError: the store is missing, not a finalized worldsim store, or yields no window of this length.
    """

    def __init__(self, url: str, window: int, *, stride: int = 1, memory_limit: int = 2 << 30,
                 cache_chunks: int = 8, buckets_only: list[str] | None = None,
                 episodes: set[int] | None = None, history: int = 0) -> None:
        if window < 1 or stride < 1 or history < 0:
            raise ValueError(f"window and stride must be >= 1 and history >= 0, got window={window}, "
                             f"stride={stride}, history={history}")
        self.url, self.window, self.history = url, int(window), int(history)
        self._episodes = episodes
        root = open_store(url)
        attrs = dict(root.attrs)
        self.attrs = attrs
        self.pixels = "latents" if "latents" in attrs else "frames"  # what the windows carry
        # the task's state per frame (`data/task_state`) travels with the windows where the store records it
        self.task_state_keys: list[str] = list(attrs.get("task_state_keys") or [])
        self._keys = (self.pixels, *_ROW_KEYS[1:]) + (("task_state",) if self.task_state_keys else ())
        self.digest: str = attrs.get("digest", "")
        self.fps = int(attrs.get("fps", 20))
        self.action_spec: dict[str, Any] = attrs.get("action_spec", {})
        names = [n for n in buckets(root) if buckets_only is None or n in buckets_only]
        self.buckets: list[Bucket] = []
        self._rows: list[_Rows] = []
        self._texts: list[dict[str, list[str]]] = []
        budget = memory_limit
        for name in names:
            g = root[name]
            try:
                b = self._index(g, name, stride)
            except (KeyError, ValueError) as err:
                raise StoreError(f"{url}/{name}: cannot index windows ({err})") from err
            if len(b.starts) == 0:
                continue
            pix = g[f"data/{self.pixels}"]
            size = int(np.prod(pix.shape)) * pix.dtype.itemsize + int(np.prod(g["data/actions"].shape)) * 4
            in_memory = size <= budget
            budget -= size if in_memory else 0
            self.buckets.append(b)
            self._rows.append(_Rows(g, in_memory, cache_chunks, self._keys))
            self._texts.append({k: read_texts(g, k) for k in ("segment_dense", "segment_short")})
        if not self.buckets:
            longest = max((int(np.diff(np.concatenate([[0], root[n]["meta/episode_ends"][...]])).max())
                           for n in names), default=0)
            where = " among the selected episodes" if episodes is not None else ""
            raise StoreError(f"{url} has no window of {window} frames{where} (longest episode: {longest} frames); "
                             f"use a smaller window or a store with longer episodes")
        self.episode_indices = sorted({int(e) for b in self.buckets for e in np.unique(b.episode)})
        self.offsets = np.cumsum([0] + [len(b.starts) for b in self.buckets])
        self.action_dim = int(self._rows[0].arrays["actions"].shape[1])

    def _index(self, g: zarr.Group, name: str, stride: int) -> Bucket:
        ends = g["meta/episode_ends"][...].astype(np.int64)
        starts_ep = np.concatenate([[0], ends[:-1]])
        ep_index = g["meta/episode_index"][...].astype(np.int64)
        seg = g["meta/segment_bounds"][...].astype(np.int64)
        seg_w = g["meta/sample_weight"][...].astype(np.float64)
        starts, eps, firsts = [], [], []
        for k, (a, z) in enumerate(zip(starts_ep, ends)):
            if self._episodes is not None and int(ep_index[k]) not in self._episodes:
                continue
            s = np.arange(a, z - self.window + 1, stride, dtype=np.int64)
            starts.append(s)
            eps.append(np.full(len(s), ep_index[k], np.int64))
            firsts.append(np.full(len(s), a, np.int64))
        starts_all = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        # segments tile each episode in order, so the segment holding a row is found by its start
        segment = np.searchsorted(seg[:, 0], starts_all, side="right") - 1
        per_segment = np.bincount(segment, minlength=len(seg)).astype(np.float64) if len(segment) else seg_w
        weight = seg_w[segment] / np.maximum(per_segment[segment], 1.0) if len(segment) else np.zeros(0)
        h, w = (int(v) for v in name[2:].split("x"))
        return Bucket(name, h, w, starts_all, np.concatenate(eps) if eps else starts_all, segment, weight,
                      np.concatenate(firsts) if firsts else starts_all)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(bucket number, position within the bucket) of a global window index."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return k, int(index - self.offsets[k])

    def read(self, index: int) -> dict[str, Any]:
        """One window: frames (T, H, W, 3) uint8, actions (T, A) float32, rewards (T,), terminated (T,),
        is_last (T,), caption / prompt (the dense caption and short prompt of the segment holding its first frame),
        weight, bucket, episode, start row."""
        k, i = self.locate(index)
        b, rows = self.buckets[k], self._rows[k]
        a = int(b.starts[i])
        out: dict[str, Any] = {key: rows.read(key, a, a + self.window) for key in self._keys}
        if self.history:
            h0 = max(int(b.episode_start[i]), a - self.history)
            pad = self.history - (a - h0)
            for key in (self.pixels, "actions"):
                part = rows.read(key, h0, a) if a > h0 else out[key][:0]
                out[f"past_{key}"] = np.concatenate([np.zeros((pad, *part.shape[1:]), part.dtype), part])
            out["past_valid"] = np.arange(self.history) >= pad
        seg = int(b.segment[i])
        out.update(caption=self._texts[k]["segment_dense"][seg], prompt=self._texts[k]["segment_short"][seg],
                   weight=float(b.weight[i]), bucket=b.name, episode=int(b.episode[i]), start=a)
        return out

    __getitem__ = read

    def texts(self) -> list[list[str]]:
        """Every segment's dense caption and short prompt, per bucket (e.g. to build a tokenizer vocabulary)."""
        return [t["segment_dense"] + t["segment_short"] for t in self._texts]

    def prompts(self) -> list[str]:
        """Every segment's short prompt, in store order."""
        return [p for t in self._texts for p in t["segment_short"]]

    def weights(self) -> np.ndarray:
        """Sampling weight of every window (segment quality weights, each segment's spread over its windows)."""
        return np.concatenate([b.weight for b in self.buckets])

    def sample(self, rng: np.random.Generator, n: int, weighted: bool = True) -> np.ndarray:
        """`n` window indices, drawn by quality weight (or uniformly)."""
        if not weighted:
            return rng.integers(0, len(self), size=n)
        p = self.weights()
        return rng.choice(len(self), size=n, p=p / p.sum())
