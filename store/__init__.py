"""The store: the on-disk contract between data generation and the model (zarr v3; needs numpy, zarr, gymnasium).

    import store
    root = store.open_store("outputs/voxel64")        # refuses an unfinished or foreign store, naming the path
    ep = store.read_episode(root, 3)                  # frames, actions, rewards, texts of episode 3
    store.validate("outputs/voxel64")                 # the schema checked; episodes, digest, statistics

- `store.schema`: layout, codecs, `StoreError`, the `Episode` record; `store.writer`: create, stage, finalize;
  `store.read`: open, read, digest, validate; `store.windows`: random training windows (`WindowReader`);
  `store.latents`: stores of cached VAE latents; `store.spaces`: the action spec and the gymnasium space it
  rebuilds; `store.prompts`: the attribute words of short prompts.
Layout and alignment rule: docs/dataset.md and docs/architecture.md ("Data contract").
"""

from store.read import (
    compute_stats,
    digest,
    episode_indices,
    open_store,
    read_episode,
    read_texts,
    validate,
    verify_digest,
)
from store.schema import (
    ALL_CHUNKS,
    ARRAY_CONFIG,
    CODEC,
    DATA_KEYS,
    LICENCE,
    SCHEMA,
    SEGMENT_QUALITY,
    TEXTS_PER_EPISODE,
    TEXTS_PER_SEGMENT,
    Episode,
    MissingChunk,
    StoreError,
    buckets,
    open_root,
    pack_texts,
    rows_per_chunk,
    unpack_texts,
)
from store.writer import (
    check_out,
    check_space,
    create_or_resume,
    discard_unused,
    finalize,
    free_space,
    local_path,
    sample_weights,
    stage_frames,
    staged_episodes,
    write_aligned,
    write_array,
    write_staged_episode,
    writer_lock,
)

__all__ = [
    "ALL_CHUNKS", "ARRAY_CONFIG", "CODEC", "DATA_KEYS", "LICENCE", "SCHEMA", "SEGMENT_QUALITY", "TEXTS_PER_EPISODE",
    "TEXTS_PER_SEGMENT", "Episode", "MissingChunk", "StoreError", "buckets", "check_out", "check_space",
    "compute_stats", "create_or_resume", "digest", "discard_unused", "episode_indices", "finalize", "free_space",
    "local_path", "open_root", "open_store", "pack_texts", "read_episode", "read_texts", "rows_per_chunk",
    "sample_weights", "stage_frames", "staged_episodes", "unpack_texts", "validate", "verify_digest", "write_aligned",
    "write_array", "write_staged_episode", "writer_lock",
]
