"""Latent stores: a frame store with its frames replaced by VAE latents, so DiT training skips the encoder.

    cache_latents("data/voxel64", "data/voxel64-latents", encode, vae_info)

The latent store keeps the source's layout, arrays, texts and attributes, with `data/latents` (N, C, h, w) float16
(normalised latents of each frame, as the VAE's `encode` returns them) in place of `data/frames`, and an attribute
`latents` naming the source store (its digest) and the VAE (its digest and config). Only per-frame VAEs can be
cached: a temporal VAE's latents depend on where a window starts. `store.windows.WindowReader` reads latent stores
like frame stores (windows then carry `latents` instead of `frames`). Written under a temporary group and marked
finalized last; an interrupted run starts again from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

import store as S

Encode = Callable[[np.ndarray], np.ndarray]  # uint8 frames (n, H, W, 3) -> float16 latents (n, C, h, w)


def cache_latents(src_url: str, out_url: str, encode: Encode, vae: dict[str, Any], block: int = 128,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Encode every frame of `src_url` into a latent store at `out_url`. Returns its root attributes.

    Raises:
        StoreError: the source is not a finalized frame store, or `out_url` holds something else (another source,
            another VAE, or not a latent store).
    """
    S.verify_digest(src_url)  # the latents record the source's digest: it must be true of what they encode
    src = S.open_store(src_url)
    if "latents" in src.attrs:
        raise S.StoreError(f"{src_url} is already a latent store")
    with S.writer_lock(out_url):
        return _cache(src, src_url, out_url, encode, vae, block, progress)


def _cache(src: zarr.Group, src_url: str, out_url: str, encode: Encode, vae: dict[str, Any], block: int,
           progress: Callable[[int], None] | None) -> dict[str, Any]:
    """`cache_latents` under the latent store's writer lock."""
    want = {"source_digest": src.attrs["digest"], "source": src_url, "vae": vae}
    existing = _existing(out_url)
    if existing is not None:
        lat = existing.get("latents")
        if lat is None:
            raise S.StoreError(f"out={out_url} holds something that is not a latent store; choose another out")
        same = lat.get("source_digest") == want["source_digest"] and lat.get("vae", {}).get("digest") == vae.get(
            "digest")
        if existing.get("finalized") and same:
            return existing  # already done
        if existing.get("finalized"):
            raise S.StoreError(f"out={out_url} holds latents of another store or VAE; choose another out")
    out = zarr.open_group(out_url, mode="w", zarr_format=3)
    attrs = {k: v for k, v in src.attrs.items() if k not in ("digest", "finalized", S.ALL_CHUNKS)}
    out.attrs.update({**attrs, "latents": want, "finalized": False})
    for name in S.buckets(src):
        _copy_bucket(src[name], out.create_group(name), encode, block, progress)
    out.attrs.update({"digest": S.digest(out), S.ALL_CHUNKS: True, "finalized": True})  # last, in one write
    return dict(out.attrs)


def _existing(url: str) -> dict[str, Any] | None:
    """Root attributes of what is at `url` (None: nothing there); refuses a non-empty folder that is not zarr."""
    S.check_out(url)
    try:
        return dict(S.open_root(url, "r").attrs)
    except S.StoreError:
        return None


def _copy_bucket(src: zarr.Group, dst: zarr.Group, encode: Encode, block: int,
                 progress: Callable[[int], None] | None) -> None:
    for group in ("data", "meta", "text"):
        g = dst.create_group(group)
        for name, arr in src[group].arrays():
            if group == "data" and name == "frames":
                continue
            S.write_array(g, name, arr[...])
    frames = src["data/frames"]
    n = frames.shape[0]
    first = np.asarray(encode(frames[: min(block, n)]), np.float16)
    rows = S.rows_per_chunk(first.shape[1:], 2)
    lat = dst["data"].create_array("latents", shape=(n, *first.shape[1:]), dtype=np.float16,
                                   chunks=(rows, *first.shape[1:]), compressors=S.CODEC,
                                   config=S.ARRAY_CONFIG)

    def encoded():
        yield first
        for a in range(len(first), n, block):
            part = np.asarray(encode(frames[a : a + block]), np.float16)
            if progress:
                progress(len(part))
            yield part

    if progress:
        progress(len(first))
    S.write_aligned(lat, encoded(), rows, block_chunks=1)
