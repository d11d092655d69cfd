"""Export a worldsim store as a LeRobot dataset (format v3.0), for tools built on LeRobot.

Layout written under `out_dir` (huggingface/lerobot src/lerobot/datasets/utils.py, codebase_version "v3.0"):

    meta/info.json                                   fps, features (dtype, shape, names), paths, totals
    meta/stats.json                                  min/max/mean/std/count/q01..q99 of every numeric feature
    meta/tasks.parquet                               task_index per task (the task string is the pandas index)
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, rows, file and video span,
                                                     and its statistics (`stats/<feature>/<stat>` columns)
    data/chunk-000/file-000.parquet                  one row per frame: action, next.reward, next.done, indices
                                                     (one row group per episode)
    videos/observation.image/chunk-000/file-000.mp4  the frames of many episodes back to back (H.264)
    README.md                                        where the data came from (store, digest, licence)

Row t keeps the store's alignment, which is LeRobot's too: `action` is taken after observing the frame at
`timestamp`, and `next.reward` / `next.terminated` / `next.truncated` result from it. `next.done` marks each
episode's last row (the final observation, whose action is a no-op that was never executed). An episode's task is
its short caption. A store with several resolution buckets becomes one dataset per bucket, in `out_dir/<H>x<W>`.
Statistics follow LeRobot's compute_stats: per episode and global, min/max/mean/std/count and the quantiles q01, q10,
q50, q90, q99 (exact here, where LeRobot estimates them from histograms); images per channel in [0, 1] from sampled
frames. LeRobot's own tools (delete_episodes, split_dataset, ...) rebuild stats.json from the per-episode ones.
Parquet needs pyarrow (`pip install 'worldsim[lerobot]'`); video goes through imageio-ffmpeg.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import store as S

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILE_MB, VIDEO_FILE_MB = 100, 200  # start a new file past these sizes (at an episode boundary)
VIDEO_KEY = "observation.image"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("exporting to LeRobot needs pyarrow: pip install 'worldsim[lerobot]'") from None
    return pa, pq


def export_lerobot(store_url: str, out_dir: str | Path, crf: int = 20, lossless: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write the store at `store_url` as LeRobot v3.0 dataset(s) under `out_dir`; returns the dataset folders.

    Args:
        store_url: a finalized worldsim store (a path or an fsspec URL).
        out_dir: a new or empty folder (one dataset, or one sub-folder `<H>x<W>` per resolution bucket).
        crf: H.264 quality of the usual 4:2:0 video (lower is better; even crf 0 keeps only a quarter of the
            colour resolution: about 32 dB on voxel frames). LeRobot seeks frames, so every second frame is a key
            frame.
        lossless: bit-exact frames instead: H.264 on RGB (libx264rgb, qp 0), about 3x larger; `crf` is ignored.
        progress: called with (episodes, frames) after each episode.

    Raises:
        StoreError: the store is missing, not finalized, or not a worldsim store.
        ValueError: `out_dir` is not empty, or crf is out of range.
        ImportError: pyarrow is not installed.
    """
    _pyarrow()
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51] (H.264), got {crf}")
    root = S.open_root(store_url, "r")
    if root.attrs.get("worldsim_schema") != S.SCHEMA or not root.attrs.get("finalized"):
        raise S.StoreError(f"{store_url} is not a finalized worldsim store (run `worldsim validate` on it)")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out={out_dir} exists and is not an empty folder; choose another or delete it")
    names = S.buckets(root)
    targets = [out] if len(names) == 1 else [out / name[2:] for name in names]
    for name, target in zip(names, targets):
        _export_bucket(root, name, target, store_url, crf, lossless, progress)
    return targets


def _export_bucket(root: Any, name: str, out: Path, store_url: str, crf: int, lossless: bool,
                   progress: Callable[[int, int], None] | None) -> None:
    pa, pq = _pyarrow()
    b, attrs = root[name], dict(root.attrs)
    fps = int(attrs["fps"])
    h, w = (int(v) for v in name[2:].split("x"))
    keys = list(attrs.get("action_spec", {}).get("flat_keys") or [])
    ends = b["meta/episode_ends"][...]
    starts = np.concatenate([[0], ends[:-1]])
    actions = b["data/actions"][...]  # (N, A) small beside the frames
    cols = {k: b[f"data/{k}"][...] for k in ("rewards", "terminated", "truncated", "is_last")}
    shorts, dense = S.read_texts(b, "episode_short"), S.read_texts(b, "episode_dense")
    tasks = list(dict.fromkeys(shorts))  # one task per distinct short caption, in order of first use
    task_of = {t: i for i, t in enumerate(tasks)}
    keys = keys if len(keys) == actions.shape[1] else [f"a{i}" for i in range(actions.shape[1])]

    row_bytes = actions.shape[1] * 4 + 5 * 8 + 4 + 3
    data_rows_per_file = max(1, DATA_FILE_MB * 2**20 // row_bytes)
    episodes, data_file, data_rows = [], 0, 0
    video_file, video_frames, writer, table_writer = 0, 0, None, None
    try:
        for e, (a, z) in enumerate(zip(starts.tolist(), ends.tolist())):
            n = z - a
            if data_rows and data_rows + n > data_rows_per_file:  # an episode never spans two files
                table_writer.close()
                table_writer, data_file, data_rows = None, data_file + 1, 0
            video_path = out / _path(VIDEO_PATH, video_file)
            if writer is not None and video_path.stat().st_size > VIDEO_FILE_MB * 2**20:
                writer.close()
                writer, video_file, video_frames = None, video_file + 1, 0
                video_path = out / _path(VIDEO_PATH, video_file)
            if writer is None:
                writer = _video_writer(video_path, w, h, fps, crf, lossless)
            for r in range(a, z, 256):  # the frames of one episode never need to fit in memory
                writer.send(np.ascontiguousarray(b["data/frames"][r : min(r + 256, z)]).tobytes())
            table = _episode_table(pa, actions, cols, a, z, e, fps, task_of[shorts[e]])
            if table_writer is None:
                path = out / _path(DATA_PATH, data_file)
                path.parent.mkdir(parents=True, exist_ok=True)
                table_writer = pq.ParquetWriter(path, table.schema)
            table_writer.write_table(table)  # one row group per episode, as LeRobot writes them
            stats = _episode_stats(table, b["data/frames"], a, z)
            episodes.append({**_episode_row(e, shorts[e], a, z, data_file, video_file, video_frames, fps,
                                            int(b["meta/episode_index"][e]), dense[e]), **_flat_stats(stats)})
            data_rows, video_frames = data_rows + n, video_frames + n
            if progress:
                progress(1, n)
    finally:
        if writer is not None:
            writer.close()
        if table_writer is not None:
            table_writer.close()
    _write_parquet(pq, pa.Table.from_pylist(episodes), out / _path(EPISODES_PATH, 0))
    _write_tasks(pa, pq, tasks, out / "meta/tasks.parquet")
    features = _features(keys, h, w, fps, "rgb24" if lossless else _pix_fmt(w, h), lossless)
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": ", ".join(attrs.get("env_ids", [])) or None,
        "total_episodes": len(ends), "total_frames": int(ends[-1]), "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB,
        "fps": fps, "splits": {"train": f"0:{len(ends)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
        "features": features,
    }
    (out / "meta/info.json").write_text(json.dumps(info, indent=4))
    (out / "meta/stats.json").write_text(json.dumps(_global_stats(b, pq, out), indent=4))
    _write_readme(out, store_url, attrs, name)


def _episode_table(pa: Any, actions: np.ndarray, cols: dict[str, np.ndarray], a: int, z: int, e: int, fps: int,
                   task: int) -> Any:
    """The parquet rows of episode `e` (store rows a..z): actions, rewards, flags, timestamps and indices."""
    n = z - a
    frame_index = np.arange(n, dtype=np.int64)
    return pa.table({
        "action": pa.FixedSizeListArray.from_arrays(pa.array(actions[a:z].reshape(-1), pa.float32()),
                                                    actions.shape[1]),
        "next.reward": pa.array(cols["rewards"][a:z], pa.float32()),
        "next.done": pa.array(cols["is_last"][a:z]),
        "next.terminated": pa.array(cols["terminated"][a:z]),
        "next.truncated": pa.array(cols["truncated"][a:z]),
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(np.full(n, e, np.int64)),
        "index": pa.array(np.arange(a, z, dtype=np.int64)),
        "task_index": pa.array(np.full(n, task, np.int64)),
    })


def _episode_row(e: int, task: str, a: int, z: int, data_file: int, video_file: int, video_frames: int, fps: int,
                 store_index: int, caption: str) -> dict[str, Any]:
    """Episode `e`'s row of meta/episodes: where its data rows and video frames are, and its task and caption."""
    n = z - a
    return {
        "episode_index": e, "tasks": [task], "length": n,
        "data/chunk_index": data_file // CHUNKS_SIZE, "data/file_index": data_file % CHUNKS_SIZE,
        "dataset_from_index": a, "dataset_to_index": z,
        f"videos/{VIDEO_KEY}/chunk_index": video_file // CHUNKS_SIZE,
        f"videos/{VIDEO_KEY}/file_index": video_file % CHUNKS_SIZE,
        f"videos/{VIDEO_KEY}/from_timestamp": video_frames / fps,
        f"videos/{VIDEO_KEY}/to_timestamp": (video_frames + n) / fps,
        "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
        "worldsim_episode_index": store_index, "worldsim_caption": caption,
    }


def _path(template: str, file: int) -> str:
    return template.format(chunk_index=file // CHUNKS_SIZE, file_index=file % CHUNKS_SIZE, video_key=VIDEO_KEY)


def _pix_fmt(w: int, h: int) -> str:
    return "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes


def _video_writer(path: Path, w: int, h: int, fps: int, crf: int, lossless: bool):
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    # -g 2: a key frame every second frame, as LeRobot encodes, so that decoding any one frame stays cheap.
    if lossless:  # RGB kept as RGB (no YUV conversion, no chroma subsampling), qp 0: bit-exact
        codec, pix_fmt, quality = "libx264rgb", "rgb24", ["-qp", "0"]
    else:
        codec, pix_fmt, quality = "libx264", _pix_fmt(w, h), ["-crf", str(crf)]
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec=codec, pix_fmt_out=pix_fmt, quality=None,
                                      macro_block_size=1, output_params=[*quality, "-g", "2"])
    gen.send(None)
    return gen


def _write_parquet(pq: Any, table: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _write_tasks(pa: Any, pq: Any, tasks: list[str], path: Path) -> None:
    """tasks.parquet as pandas writes `DataFrame({"task_index": ...}, index=Index(tasks, name="task"))`, which
    is how LeRobot reads it (`pd.read_parquet(...)`, looked up by task string); pandas itself is not needed."""
    pandas_meta = {
        "index_columns": ["task"], "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                                                       "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(np.arange(len(tasks), dtype=np.int64)), "task": pa.array(tasks)})
    _write_parquet(pq, table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), path)


def _features(keys: list[str], h: int, w: int, fps: int, pix_fmt: str, lossless: bool) -> dict[str, Any]:
    scalar = {"shape": [1], "names": None}
    return {
        VIDEO_KEY: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                    "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": pix_fmt,
                             "video.lossless": lossless,
                             "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}},
        "action": {"dtype": "float32", "shape": [len(keys)], "names": keys},
        "next.reward": {"dtype": "float32", **scalar}, "next.done": {"dtype": "bool", **scalar},
        "next.terminated": {"dtype": "bool", **scalar}, "next.truncated": {"dtype": "bool", **scalar},
        "timestamp": {"dtype": "float32", **scalar}, "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar}, "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }


QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's DEFAULT_QUANTILES, written as q01 ... q99
STAT_COLUMNS = ("action", "next.reward", "next.done", "next.terminated", "next.truncated", "timestamp",
                "frame_index", "episode_index", "index", "task_index")


def _summary(x: np.ndarray, count: int | None = None) -> dict[str, Any]:
    """LeRobot's statistics of samples x (n, ...) over the first axis: min, max, mean, std, count, q01..q99
    (with fewer than two samples every quantile is the mean, as LeRobot does)."""
    x = np.asarray(x, np.float64)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0),
           "count": np.array([len(x) if count is None else count])}
    qs = np.quantile(x, QUANTILES, axis=0) if len(x) >= 2 else [out["mean"]] * len(QUANTILES)
    out.update({f"q{round(q * 100):02d}": v for q, v in zip(QUANTILES, qs)})
    return {k: np.atleast_1d(v) for k, v in out.items()}


def _image_summary(frames: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics of uint8 frames (n, H, W, 3), scaled to [0, 1], shaped (3, 1, 1) as LeRobot's."""
    h, w = frames.shape[1:3]
    if max(h, w) >= 300:  # LeRobot's auto_downsample_height_width: about 150 pixels a side
        step = int(max(h, w) / 150)
        frames = frames[:, ::step, ::step]
    pixels = frames.reshape(-1, 3) / 255.0
    stats = _summary(pixels, count=len(frames))
    return {k: v if k == "count" else v.reshape(3, 1, 1) for k, v in stats.items()}


def _sample_rows(n: int) -> np.ndarray:
    """LeRobot's image sampling (estimate_num_samples): all frames up to 100, then n^0.75, at most 10000."""
    k = n if n < 100 else max(100, min(int(n**0.75), 10_000))
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def _table_stats(table: Any) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of every numeric column of parquet rows (the action column is a fixed-size list per row)."""
    stats = {}
    for key in STAT_COLUMNS:
        col = table.column(key)
        values = np.stack(col.to_numpy(zero_copy_only=False)) if key == "action" else col.to_numpy()
        stats[key] = _summary(values.astype(np.float64))
    return stats


def _episode_stats(table: Any, frames: Any, a: int, z: int) -> dict[str, dict[str, np.ndarray]]:
    """One episode's statistics of every numeric feature, from its parquet rows and sampled frames."""
    stats = _table_stats(table)
    rows = a + _sample_rows(z - a)
    stats[VIDEO_KEY] = _image_summary(frames.get_orthogonal_selection((rows,)))
    return stats


def _flat_stats(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """`stats/<feature>/<stat>` columns of meta/episodes, as LeRobot flattens them."""
    return {f"stats/{key}/{name}": value.tolist() for key, feats in stats.items() for name, value in feats.items()}


def _global_stats(b: Any, pq: Any, out: Path) -> dict[str, Any]:
    """stats.json over the whole bucket: exact for the table columns (read back from the data files written),
    images from LeRobot's sample of the bucket's frames."""
    stats = _table_stats(pq.read_table(out / "data"))
    frames = b["data/frames"]
    stats[VIDEO_KEY] = _image_summary(frames.get_orthogonal_selection((_sample_rows(frames.shape[0]),)))
    return {key: {name: value.tolist() for name, value in feats.items()} for key, feats in stats.items()}


def _write_readme(out: Path, store_url: str, attrs: dict[str, Any], bucket: str) -> None:
    lines = [
        "# worldsim store exported to LeRobot v3.0", "",
        f"- source: worldsim store `{store_url}`, bucket `{bucket}`, content digest `{attrs.get('digest')}`",
        f"- environments: {', '.join(attrs.get('env_ids', []))}; licence: {attrs.get('licence')}",
        f"- alignment: {attrs.get('alignment')}; `next.done` marks each episode's final observation, whose action "
        "is a no-op that was never executed",
        f"- action columns: {', '.join(attrs.get('action_spec', {}).get('flat_keys', []))}",
        "- tasks are the episodes' short captions; `worldsim_caption` in meta/episodes holds the dense ones", "",
        "The dataset card of the source store (its DATASET.md) has the full provenance.", ""]
    (out / "README.md").write_text("\n".join(lines))
