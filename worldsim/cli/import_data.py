"""worldsim import SRC out=PATH: recorded Minecraft play (MineRL v0.4, OpenAI VPT) as a worldsim store.

Reads MineRL v0.4 trajectory folders (recording.mp4, rendered.npz, metadata.json; SRC is one folder or any tree of
them, such as the data root) or OpenAI VPT contractor recordings (NAME.mp4 + NAME.jsonl; SRC is one of the files or
a folder), maps their actions to the voxel world's action spec, captions what the recording shows (inputs,
rewards, inventory changes; there is no engine ground truth), and writes a finalized store whose DATASET.md names
the source, its licence and every file imported. format=auto tells the two apart by their files. Every file is
checked before anything is written; an interrupted import resumes when run again. Mapping tables and alignment:
docs/dataset.md ("Importing and exporting").

examples:
  worldsim import data/minerl/MineRLTreechop-v0 out=data/treechop
  worldsim import data/vpt/8.0 format=vpt width=128 height=72 out=data/vpt128
  worldsim import format=minerl src=downloads/v3_some_stream env=MineRLNavigate-v0 out=data/one
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from worldsim.cli import build
from worldsim.errors import InputError


@dataclass
class ImportConfig:
    src: str = "???"
    format: str = "auto"
    out: str = "outputs/imported"
    width: int | None = None
    height: int | None = None
    env: str | None = None
    segment_seconds: float = 2.0
    licence: str | None = None
    allow_pickle: bool = False


def main(raw) -> int:
    from tqdm import tqdm

    from datagen.io import importers as I

    cfg = build(ImportConfig, raw, "import config")
    fmt = I.detect_format(cfg.src) if cfg.format == "auto" else cfg.format
    if fmt not in ("minerl", "vpt"):
        raise InputError(f"unknown format {cfg.format!r}; choose one of ['auto', 'minerl', 'vpt']")
    if fmt == "vpt" and (cfg.env is not None or cfg.allow_pickle):
        raise InputError("env and allow_pickle apply to format=minerl only")
    count = len(I.find_minerl(cfg.src) if fmt == "minerl" else I.find_vpt(cfg.src))
    bar = tqdm(total=count, desc=f"importing {fmt}", unit="rec", delay=0.5)  # delay: a quick error prints alone
    frames = [0]

    def progress(episodes: int, n_frames: int) -> None:
        frames[0] += n_frames
        bar.update(episodes)
        bar.set_postfix_str(f"{frames[0] / max(bar.format_dict['elapsed'], 1e-9):.0f} frames/s")

    common = dict(width=cfg.width, height=cfg.height, segment_seconds=cfg.segment_seconds, licence=cfg.licence,
                  progress=progress)
    try:
        if fmt == "minerl":
            attrs = I.import_minerl(cfg.src, cfg.out, env=cfg.env, allow_pickle=cfg.allow_pickle, **common)
        else:
            attrs = I.import_vpt(cfg.src, cfg.out, **common)
    finally:
        bar.close()
    st = attrs["stats"]
    print(json.dumps({"out": cfg.out, "format": fmt, "episodes": st["episodes"], "frames": st["frames"],
                      "resolutions": st["resolutions"], "env_ids": attrs["env_ids"], "digest": attrs["digest"]}))
    return 0
