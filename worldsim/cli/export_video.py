"""worldsim export-video PATH episode=N: an MP4 of one stored episode, upscaled, with its text and actions.

Each video frame is the stored frame enlarged with nearest-neighbour pixels (`scale`; by default the smallest
whole factor that makes it at least 384 px tall) above a text panel: episode, frame index, reward (and
terminated/truncated), the action taken after that frame (pressed keys and camera degrees for voxel stores, the
named vector for physics), and the caption of the current segment. `episode` is the job's episode number
(`meta/episode_index`); the final row of an episode is its last observation, whose action was never executed.

examples:
  worldsim export-video outputs/dataset episode=0 out=outputs/episode0.mp4
  worldsim export-video data/voxel64 episode=5 caption=short scale=4 fps=10
  worldsim export-video data/physics episode=2 caption=none actions=false
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from worldsim.cli import build
from worldsim.cli.common import output_file
from worldsim.errors import InputError

MIN_HEIGHT = 384  # px; the default scale makes the frame at least this tall


@dataclass
class ExportVideoConfig:
    path: str = "???"
    episode: int = 0
    out: str | None = None
    scale: int | None = None
    caption: str = "dense"
    actions: bool = True
    fps: float | None = None


def action_text(vec: np.ndarray, spec: dict[str, Any]) -> str:
    """One line naming an action from the store's action spec: pressed Discrete(2) keys, other values by name."""
    keys = spec.get("flat_keys") or [f"a{i}" for i in range(len(vec))]
    spaces = spec.get("spaces", {})
    pressed, values, has_buttons = [], [], False
    for key, v in zip(keys, np.asarray(vec, dtype=np.float64)):
        space = spaces.get(key, {})
        if space.get("type") == "Discrete" and space.get("n") == 2:
            has_buttons = True
            if v:
                pressed.append(key)
        elif space.get("type") == "Discrete":
            if v:
                values.append(f"{key} {int(v)}")
        else:
            values.append(f"{key} {v:+.2f}")
    parts = ([f"keys: {' '.join(pressed) or '-'}"] if has_buttons else []) + values
    return " | ".join(parts)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _wrap(text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def _panel_lines(ep: dict[str, Any], t: int, cfg: ExportVideoConfig, spec: dict[str, Any], font: Any,
                 width: int, captions: list[list[str]]) -> list[str]:
    """The text under frame `t`: header, action, caption of its segment."""
    n, seg = len(ep["frames"]), ep["segments"]
    head = f"episode {ep['index']} | frame {t}/{n - 1} | reward {float(ep['rewards'][t]):+.2f}"
    head += " | terminated" * bool(ep["terminated"][t]) + " | truncated" * bool(ep["truncated"][t])
    lines = [head]
    if cfg.actions:
        act = "final observation: no action" if ep["is_last"][t] else action_text(ep["actions"][t], spec)
        lines += _wrap(act, font, width)
    if cfg.caption != "none":
        k = int(np.searchsorted(seg[:, 1], t, side="right"))
        lines += [f"segment {k + 1}/{len(seg)}:", *captions[k]]
    return lines


def main(raw) -> int:
    import imageio.v2 as imageio
    from PIL import Image, ImageDraw

    from store import StoreError, read_episode
    from store.read import open_store
    from worldsim.provenance import RENDERED, sign

    cfg = build(ExportVideoConfig, raw, "export-video config")
    if cfg.path == "???":
        raise InputError("which store? worldsim export-video PATH episode=N")
    if cfg.caption not in ("dense", "short", "none"):
        raise InputError(f"caption must be dense, short or none, got {cfg.caption!r}")
    if cfg.scale is not None and cfg.scale < 1:
        raise InputError(f"scale must be a positive whole number, got {cfg.scale}")
    if cfg.fps is not None and cfg.fps <= 0:
        raise InputError(f"fps must be positive, got {cfg.fps}")
    out = output_file(cfg.out or f"outputs/episode_{cfg.episode}.mp4", (".mp4",))
    try:
        ep = read_episode(str(cfg.path), cfg.episode)
        attrs = dict(open_store(str(cfg.path)).attrs)
    except StoreError as err:
        raise InputError(str(err)) from None
    spec = ep["action_spec"]
    n, h, w = ep["frames"].shape[:3]
    scale = cfg.scale or max(1, -(-MIN_HEIGHT // h))
    width = w * scale + (w * scale) % 2  # libx264 (yuv420p) needs even sizes
    font = _font(max(10, round(width / 36)))
    line_h = font.getbbox("Ag")[3] + 4
    texts = ep["segment_dense" if cfg.caption == "dense" else "segment_short"]
    captions = [_wrap(c, font, width - 12) for c in texts] if cfg.caption != "none" else []
    panels = [_panel_lines(ep, t, cfg, spec, font, width - 12, captions) for t in range(n)]
    panel_h = max(len(p) for p in panels) * line_h + 10
    height = h * scale + panel_h + (h * scale + panel_h) % 2
    fps = cfg.fps or float(ep["fps"] or 20)

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.stem + ".part.mp4")  # the finished file appears only when complete
        with open(part, "wb"):  # ffmpeg starts at the first frame; find an unwritable out now
            pass
        writer = imageio.get_writer(part, fps=fps, macro_block_size=1, codec="libx264", quality=8)
    except OSError as err:
        raise InputError(f"cannot write out={out}: {err.strerror or err} ({err.filename})") from None
    try:
        for t in range(n):
            canvas = Image.new("RGB", (width, height), (16, 16, 16))
            big = np.repeat(np.repeat(ep["frames"][t], scale, axis=0), scale, axis=1)  # nearest: keep the pixels
            canvas.paste(Image.fromarray(big), (0, 0))
            draw = ImageDraw.Draw(canvas)
            for i, line in enumerate(panels[t]):
                draw.text((6, h * scale + 5 + i * line_h), line, font=font, fill=(235, 235, 235))
            writer.append_data(np.asarray(canvas))
        writer.close()
        sign(part, RENDERED, {"store": str(cfg.path), "store_digest": str(attrs.get("digest", "")),
                              "engine": (attrs.get("job") or {}).get("env_id", ""), "episode": int(cfg.episode),
                              "episode_seed": ep["seed"], "frames": int(n)})
        os.replace(part, out)
    except BaseException:
        writer.close()
        part.unlink(missing_ok=True)
        raise
    print(f"wrote {out} ({n} frames of episode {cfg.episode}, {width}x{height}, scale {scale}, {fps:g} fps, "
          f"{n / fps:.1f} s)")
    return 0
