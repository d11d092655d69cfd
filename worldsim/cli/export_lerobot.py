"""worldsim export-lerobot PATH out=DIR: a worldsim store as a LeRobot dataset (format v3.0).

Writes meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/..., data/chunk-000/file-000.parquet
(one row per frame: action, next.reward, next.done, next.terminated, next.truncated, indices) and
videos/observation.image/chunk-000/file-000.mp4 (H.264), plus a README.md naming the source store and its digest.
Row t keeps the store's alignment: `action` is taken after observing frame t. Each episode's task is its short
caption. A store with several resolutions becomes one dataset per resolution, in DIR/<H>x<W>. DIR must be new or
empty. Needs pyarrow: pip install 'worldsim[lerobot]'.

examples:
  worldsim export-lerobot outputs/dataset out=outputs/lerobot
  worldsim export-lerobot data/treechop out=data/treechop_lerobot crf=10          (sharper 4:2:0 video)
  worldsim export-lerobot data/treechop out=data/treechop_lerobot lossless=true    (bit-exact frames, ~3x larger)

crf is H.264's quality for the usual 4:2:0 video (LeRobot's default kind): lower is sharper, but even crf=0 keeps a
quarter of the colour resolution (about 32 dB on voxel frames); lossless=true writes RGB H.264 (libx264rgb, qp 0).
meta/stats.json and each meta/episodes row carry LeRobot's statistics (min, max, mean, std, count, q01..q99).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from worldsim.cli import build
from worldsim.errors import InputError


@dataclass
class ExportLerobotConfig:
    path: str = "???"
    out: str = "outputs/lerobot"
    crf: int = 20
    lossless: bool = False


def main(raw) -> int:
    from tqdm import tqdm

    import store as S
    from datagen.io.lerobot import export_lerobot

    cfg = build(ExportLerobotConfig, raw, "export-lerobot config")
    episodes = S.open_root(cfg.path, "r").attrs.get("stats", {}).get("episodes")
    bar = tqdm(total=episodes, desc="episodes", unit="ep", delay=0.5)

    def progress(n_episodes: int, n_frames: int) -> None:
        bar.update(n_episodes)

    try:
        outs = export_lerobot(cfg.path, cfg.out, crf=cfg.crf, lossless=cfg.lossless, progress=progress)
    except ImportError as err:
        raise InputError(str(err)) from None
    finally:
        bar.close()
    print(json.dumps({"out": [str(o) for o in outs], "episodes": episodes}))
    return 0
