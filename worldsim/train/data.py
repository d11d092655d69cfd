"""Training data: windows of T frames with actions, captions and quality weights, from one or more worldsim stores.

The model never sees an engine: everything it learns about a game (action spec, fps, resolution, provenance) comes
from the stores' attributes (docs/architecture.md section 2).

    stores = StoreSet(["data/voxel64"], frames=16, split="train", val_episodes=2)
    loader = batches(stores, batch_size=8, seed=0)            # an endless iterator of bucketed batches
    batch = next(loader)  # frames (B, T, H, W, 3) uint8, actions (B, T, A), captions [B], weights (B,)

Batches are bucketed: every batch holds windows of one resolution (native sizes train together, never cropped).
Batch `s` is a pure function of (seed, step, rank), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from store import StoreError, episode_indices, verify_digest
from store.windows import WindowReader
from worldsim.errors import InputError


@dataclass(frozen=True)
class StoreInfo:
    """What a model records about each store it was trained on."""

    url: str
    digest: str
    env_ids: list[str]
    generator: dict[str, Any]
    job: dict[str, Any]
    episodes: list[int]
    source_digest: str | None = None  # for a latent store: the frame store it was encoded from

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def verify_stores(urls: list[str]) -> None:
    """Check every store a training run will name in its provenance against its recorded digest (each once): a
    damaged or modified store is refused, never recorded under the digest of its intact self."""
    for url in dict.fromkeys(u for u in urls if u):
        verify_digest(url)


def store_changes(recorded: list[dict[str, Any]], stores: StoreSet) -> list[tuple[str, str, str]]:
    """("stores", recorded digests, current digests) for `check_resume`, compared as sets of content digests: the
    same data under another path resumes; a store regenerated in place (same path, other content) does not."""
    def short(digests: list[str]) -> str:
        return ", ".join(f"{d[:12]}..." for d in sorted(digests))

    return [("stores", short([i.get("digest", "") for i in recorded]), short([i.digest for i in stores.infos]))]


class StoreSet:
    """Windows of `frames` frames over one or more stores that share an action spec and fps.

    Args:
        urls: store paths or fsspec URLs.
        frames: window length T.
        split: "train" (all but the held-out episodes), "val" (only them) or "all".
        val_episodes: how many episodes of each store (the highest episode indices, i.e. their own seeds) are held
            out. 0 holds out nothing ("val" then raises).

    Raises:
        StoreError: a store is unreadable, the stores disagree on actions or fps, or no window fits.
    """

    def __init__(self, urls: list[str], frames: int, split: str = "all", val_episodes: int = 0,
                 history: int = 0) -> None:
        if not urls:
            raise StoreError("no store given (store=PATH)")
        if split not in ("train", "val", "all"):
            raise InputError(f"split must be train, val or all, got {split!r}")
        self.args = (list(urls), frames, split, val_episodes, history)  # rebuilds the same set in a worker process
        self.readers: list[WindowReader] = []
        self.infos: list[StoreInfo] = []
        for url in urls:
            indices = episode_indices(url)
            held = set(indices[len(indices) - val_episodes:]) if val_episodes else set()
            if split == "val" and not held:
                raise StoreError(f"{url}: split=val needs val_episodes > 0")
            if split == "train" and len(held) >= len(indices):
                raise StoreError(f"{url} has {len(held)} episodes, all held out by val_episodes={val_episodes}")
            chosen = {"train": set(indices) - held, "val": held, "all": None}[split]
            reader = WindowReader(url, frames, episodes=chosen, history=history)
            self.readers.append(reader)
            a = reader.attrs
            self.infos.append(StoreInfo(url, reader.digest, list(a.get("env_ids", [])), dict(a.get("generator", {})),
                                        dict(a.get("job", {})), reader.episode_indices,
                                        a.get("latents", {}).get("source_digest")))
        first = self.readers[0]
        self.latents = first.pixels == "latents"  # windows carry VAE latents (a latent store) instead of frames
        for r in self.readers[1:]:
            if r.pixels != first.pixels:
                raise StoreError(f"{r.url} holds {r.pixels} and {first.url} {first.pixels}; train on one kind")
            if r.action_spec != first.action_spec or r.fps != first.fps:
                raise StoreError(f"{r.url} has another action spec or fps than {first.url}; "
                                 "train on stores of one game")
        self.frames = frames
        self.fps = first.fps
        self.action_spec = first.action_spec
        self.action_dim = first.action_dim
        self.action_scale = action_scale(first.attrs)
        # bucket key (H, W) -> list of (reader, bucket number), and the weights of all its windows (computed once:
        # drawing a batch is on the training loop's path)
        self.buckets: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for k, r in enumerate(self.readers):
            for j, b in enumerate(r.buckets):
                self.buckets.setdefault((b.height, b.width), []).append((k, j))
        weights = {key: np.concatenate([self.readers[k].buckets[j].weight for k, j in parts])
                   for key, parts in self.buckets.items()}
        keys = self.resolutions()
        mass = np.array([weights[k].sum() for k in keys])
        count = np.array([len(weights[k]) for k in keys], dtype=np.float64)
        # drawing probabilities (bucket, then window within it): by quality weight, or every window alike
        self._draw = {True: (mass / mass.sum(), {k: weights[k] / weights[k].sum() for k in keys}),
                      False: (count / count.sum(), {k: np.full(len(weights[k]), 1.0 / len(weights[k])) for k in keys})}
        self._bounds = {key: np.cumsum([0] + [len(self.readers[k].buckets[j].weight) for k, j in parts])
                        for key, parts in self.buckets.items()}

    def __len__(self) -> int:
        return sum(len(r) for r in self.readers)

    def resolutions(self) -> list[tuple[int, int]]:
        return sorted(self.buckets)

    def batch(self, rng: np.random.Generator, size: int, weighted: bool = True) -> dict[str, Any]:
        """One batch from one bucket: the bucket is drawn by its total weight, windows by their own (unweighted:
        every window, and so every bucket by its window count, alike)."""
        keys = self.resolutions()
        p_bucket, p_window = self._draw[bool(weighted)]
        key = keys[int(rng.choice(len(keys), p=p_bucket))] if len(keys) > 1 else keys[0]
        picks = rng.choice(len(p_window[key]), size=size, p=p_window[key])
        parts, bounds = self.buckets[key], self._bounds[key]
        items = []
        for p in picks:
            q = int(np.searchsorted(bounds, p, side="right") - 1)
            k, j = parts[q]
            items.append(self.readers[k].read(int(self.readers[k].offsets[j] + p - bounds[q])))
        return collate(items)

    def read(self, index: int) -> dict[str, Any]:
        """Window `index` of all stores in order (evaluation)."""
        for r in self.readers:
            if index < len(r):
                return r.read(index)
            index -= len(r)
        raise IndexError("window index out of range")

    def spread(self, count: int) -> list[int]:
        """`count` evenly spaced window indices: a fixed evaluation subset."""
        return sorted(set(np.linspace(0, len(self) - 1, min(count, len(self))).round().astype(int).tolist()))


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    pixels = "latents" if "latents" in items[0] else "frames"
    return {
        # frames (B, T, H, W, 3) uint8, or latents (B, T, C, h, w) float16 from a latent store
        pixels: torch.from_numpy(np.stack([it[pixels] for it in items])),
        "actions": torch.from_numpy(np.stack([it["actions"] for it in items]).astype(np.float32)),  # (B, T, A)
        "is_last": torch.from_numpy(np.stack([it["is_last"] for it in items])),  # (B, T)
        "captions": [it["caption"] for it in items],
        "prompts": [it["prompt"] for it in items],
        "weights": torch.tensor([it["weight"] for it in items], dtype=torch.float32),
        "episodes": [it["episode"] for it in items],
        "starts": [it["start"] for it in items],
        # the task's state per frame (B, T, K) where every window's store records one (data/task_state)
        **({"task_state": torch.from_numpy(np.stack([it["task_state"] for it in items]).astype(np.float32))}
           if all("task_state" in it for it in items) else {}),
        # the rows before each window (WindowReader's history), when asked for
        **{k: torch.from_numpy(np.stack([it[k] for it in items]))
           for k in (f"past_{pixels}", "past_actions", "past_valid") if k in items[0]},
    }


def action_scale(attrs: dict[str, Any]) -> list[float]:
    """Per-column divisor that brings actions to about [-1, 1]: 1 for keys and bounded controls, 2 std for wide
    continuous columns such as camera degrees. Stored in checkpoints so a model and its env agree."""
    stats = attrs.get("stats", {}).get("actions", {})
    keys = attrs.get("action_spec", {}).get("flat_keys") or list(stats)
    return [max(1.0, 2.0 * float(stats.get(k, {}).get("std", 0.0))) for k in keys]


def batch_rng(seed: int, step: int, rank: int = 0) -> np.random.Generator:
    """The generator of batch `step` on `rank`: batches do not depend on history, so resume is exact."""
    return np.random.default_rng([int(seed), int(step), int(rank), 0xDA7A])


def batches(stores: StoreSet, batch_size: int, seed: int, start_step: int = 0, rank: int = 0,
            weighted: bool = True) -> Iterator[dict[str, Any]]:
    """Endless bucketed batches, batch `s` drawn from `batch_rng(seed, s, rank)`."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if len(stores) == 0:
        raise StoreError("the stores yield no training windows; use a smaller window or more data")
    step = start_step
    while True:
        yield stores.batch(batch_rng(seed, step, rank), batch_size, weighted)
        step += 1


class BatchStream(torch.utils.data.IterableDataset):
    """`batches` as a torch dataset, for DataLoader worker processes: worker w of n builds its own StoreSet and
    makes batches s = w, w + n, ...; the DataLoader interleaves workers in order, so batch s is the same with any
    number of workers."""

    def __init__(self, args: tuple, batch_size: int, seed: int, start_step: int = 0, rank: int = 0) -> None:
        self.args = args
        self.batch_size, self.seed, self.start_step, self.rank = batch_size, seed, start_step, rank

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info else (0, 1)
        stores = StoreSet(*self.args)
        step = self.start_step + w
        while True:
            yield stores.batch(batch_rng(self.seed, step, self.rank), self.batch_size)
            step += n


def make_loader(stores: StoreSet, batch_size: int, seed: int, start_step: int = 0, rank: int = 0,
                workers: int = 0) -> Iterator[dict[str, Any]]:
    """Batches in this process (workers=0) or from `workers` spawned processes (same batches either way)."""
    if workers <= 0:
        return batches(stores, batch_size, seed, start_step, rank)
    stream = BatchStream(stores.args, batch_size, seed, start_step, rank)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                         multiprocessing_context="spawn", persistent_workers=True, prefetch_factor=4)
    return iter(loader)
