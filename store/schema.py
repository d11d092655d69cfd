"""The store schema: layout constants, codecs, the error type, the episode record and packed texts.

The on-disk dataset schema (zarr v3), owned here alone: create, write, finalize, open, validate, read, digest.

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

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import WrapperStore

# The dataset card lives beside the arrays; zarr would warn about it on every listing.
warnings.filterwarnings("ignore", message="Object at DATASET.md is not recognized")

SCHEMA = 1


LICENCE = "procedurally generated, no third-party media"


# Chosen by measurement (benchmarks/store_codecs.py, table in docs/dataset.md): zstd-3 stores voxel frames 3.4x smaller;
# level 5 halves the write speed for 5% less space, and bitshuffle doubles the size of uint8 frames.
CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


# Staged episodes live only until finalize: lz4-1 writes and reads about twice as fast as zstd-3.
STAGING_CODEC = BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")


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
    task_state: np.ndarray | None = None  # (T, K) float32: the task's state per frame (data/task_state), if it has one
    task_state_keys: tuple[str, ...] = ()  # its K column names

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
# zarr leaves out chunks that equal the fill value, and reads any missing chunk back as fill values: a deleted chunk
# of frames would read as black frames. Stores write every chunk (this array config) and say so in the root
# attribute ALL_CHUNKS; readers of such a store then treat a missing chunk as damage (MissingChunk), never as data.
ARRAY_CONFIG = {"write_empty_chunks": True}
ALL_CHUNKS = "all_chunks_written"


class MissingChunk(StoreError):
    """A chunk that a store written with every chunk lacks: the store is damaged."""


class _Strict(WrapperStore):
    """A read-only view of a store in which a missing chunk raises MissingChunk instead of reading as fill values."""

    def __init__(self, store: Any, url: str) -> None:
        super().__init__(store)
        self.url = url

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        buf = await self._store.get(key, prototype, byte_range)
        if buf is None and "/c/" in f"/{key}":  # a chunk key (zarr v3's default "c/..." encoding), not metadata
            raise MissingChunk(f"{self.url}: chunk {key} is missing: the store is damaged (regenerate or restore it; "
                               f"`worldsim validate` checks every chunk)")
        return buf


def open_root(url: str, mode: str) -> zarr.Group:
    """Open a store's root group (a path or an fsspec URL such as file:// or memory://). Read-only (`mode="r"`), a
    store whose root says every chunk was written is opened strict: a missing chunk raises MissingChunk."""
    # file:// goes through zarr's LocalStore (as a plain path does): fsspec's local filesystem would not create
    # the folders of new groups.
    target = url[len("file://"):] if url.startswith("file://") else url
    try:
        root = zarr.open_group(target, mode=mode, zarr_format=3)
        if mode == "r" and root.attrs.get(ALL_CHUNKS):
            root = zarr.open_group(_Strict(root.store, url), mode="r", zarr_format=3, path=root.path)
        return root
    except FileNotFoundError as err:
        raise StoreError(f"no zarr store at {url}") from err
    except Exception as err:  # zarr raises many types for unreadable metadata
        raise StoreError(f"cannot open {url} as a zarr v3 store: {type(err).__name__}: {err}") from err


def rows_per_chunk(row_shape: tuple[int, ...], itemsize: int) -> int:
    """Rows per chunk: about 512 KB of data. Random 16-frame training windows then decode ~42 frames at 64x64
    instead of ~170 with 2 MB chunks (2x the window read speed), at the same compression ratio."""
    row = max(1, int(np.prod(row_shape)) * itemsize)
    return int(np.clip(2**19 // row, 1, 65536))


# -- reading ---------------------------------------------------------------------------------------------------
def buckets(root: zarr.Group) -> list[str]:
    return sorted(name for name, _ in root.groups() if name.startswith("b_"))
