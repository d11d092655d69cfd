"""worldsim sample: generate video with a trained world model, from text, an image, a clip, or a stored episode.

Modes: t2v (text to video), t2i (one frame), i2v (animate `image`), extend (continue `video` forward, or backward
with direction=backward), loop (a seamless loop), edit (SDEdit `video` towards `prompt` with `strength`), connect
(a transition from `video` to `video2`), rollout (frames from `context` frames and the recorded actions of a store
episode). Context can come from files (image=, video=, video2=) or from a store (store=PATH episode=N episode2=M).
Writes an MP4 (or .npy frames, or a .png for t2i) and OUT.json with provenance (checkpoint digest, prompt, seed).

examples:
  worldsim sample ckpt=runs/dit64 mode=t2v prompt="a snowy forest at night" frames=16 out=snow.mp4
  worldsim sample ckpt=runs/dit64 mode=rollout store=data/heldout episode=0 context=4 frames=32 out=roll.mp4
  worldsim sample ckpt=runs/dit64 mode=extend video=clip.mp4 frames=16 direction=backward out=before.mp4
  worldsim sample ckpt=runs/dit64 mode=edit video=clip.mp4 prompt="desert at sunset" strength=0.5 out=edit.mp4
  worldsim sample ckpt=runs/dit64 mode=connect store=data/heldout episode=0 episode2=3 frames=4 out=bridge.mp4
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.cli import build
from worldsim.cli.common import output_file
from worldsim.errors import InputError

MODES = ("t2v", "t2i", "i2v", "extend", "loop", "edit", "connect", "rollout")


@dataclass
class SampleConfig:
    ckpt: str = "???"
    mode: str = "t2v"
    out: str = "outputs/sample.mp4"
    prompt: str = ""
    frames: int = 0
    width: int = 0
    height: int = 0
    steps: int = 0  # 0: the model's own (sampling_steps)
    sampler: str = "euler"
    cfg_text: float = 1.0
    cfg_actions: float = 1.0
    seed: int = 0
    image: str | None = None
    video: str | None = None
    video2: str | None = None
    store: str | None = None
    episode: int = 0
    episode2: int = 1
    context: int = 4
    direction: str = "forward"
    strength: float = 0.6
    device: str = "cpu"
    render: str = "carry"  # rollout: carry (pixel carry, worldsim/model/render.py) or latent (decode only)


def read_video(path: str) -> np.ndarray:
    """(F, H, W, 3) uint8 from an .npy array, an image, or a video file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {path}")
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    else:
        import imageio.v3 as iio

        try:
            arr = iio.imread(p, index=None) if p.suffix.lower() in (".mp4", ".gif", ".webm", ".avi", ".mov") \
                else iio.imread(p)[None]
        except Exception as err:  # imageio raises many types for unreadable files
            raise InputError(f"cannot read {path} as an image or video: {err}") from err
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8:
        raise InputError(f"{path}: expected uint8 frames (F, H, W, 3), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr[..., :3])


def _episode(store: str, index: int) -> dict:
    from store import read_episode

    return read_episode(store, index)


def _source(cfg: SampleConfig, which: int = 1) -> np.ndarray:
    """The input clip of a mode: video= (video2= for the second clip of connect) or the store episode."""
    path = cfg.video if which == 1 else cfg.video2
    if path:
        return read_video(path)
    if cfg.store:
        return _episode(cfg.store, cfg.episode if which == 1 else cfg.episode2)["frames"]
    raise InputError(f"mode={cfg.mode} needs {'video' if which == 1 else 'video2'}=FILE or store=PATH")


def _generate(cfg: SampleConfig, s: Any, prompt: str, frames: int, kw: dict[str, Any]) -> np.ndarray:
    """The frames (F, H, W, 3) uint8 of one sampling mode."""
    if cfg.mode == "t2v":
        return s.t2v(prompt, frames, cfg.height, cfg.width, **kw)
    if cfg.mode == "t2i":
        return s.t2i(prompt, height=cfg.height, width=cfg.width, **kw)[None]
    if cfg.mode == "i2v":
        image = read_video(cfg.image)[0] if cfg.image else _source(cfg)[0]
        return s.i2v(image, frames, prompt, **kw)
    if cfg.mode == "extend":
        clip = _source(cfg)
        clip = clip[: cfg.context] if cfg.direction == "backward" else clip[-cfg.context :]
        return s.extend(clip, frames, prompt, cfg.direction, **kw)
    if cfg.mode == "loop":
        return s.loop(prompt, frames, **kw)
    if cfg.mode == "edit":
        return s.edit(_source(cfg)[:frames], prompt, cfg.strength, **kw)
    if cfg.mode == "connect":
        return s.connect(_source(cfg, 1), _source(cfg, 2), frames, prompt, **kw)
    if not cfg.store:  # rollout: the store episode's recorded actions drive the model
        raise InputError("mode=rollout needs store=PATH episode=N (context frames and recorded actions)")
    ep = _episode(cfg.store, cfg.episode)
    n = len(ep["frames"])
    if cfg.context + frames > n:  # never shortened quietly: the recorded actions end with the episode
        raise InputError(f"episode {cfg.episode} of {cfg.store} has {n} frames: context={cfg.context} + "
                         f"frames={frames} do not fit; ask for frames <= {max(n - cfg.context, 0)}")
    return s.rollout(ep["frames"][: cfg.context], ep["actions"][: cfg.context + frames - 1], prompt, **kw)


def main(raw) -> int:
    import torch

    from worldsim.model.render import check_render
    from worldsim.model.sampler import WorldSampler

    cfg = build(SampleConfig, raw, "sample config")
    if cfg.mode not in MODES:
        raise InputError(f"unknown mode {cfg.mode!r}; choose one of {list(MODES)}")
    if cfg.frames < 0 or cfg.steps < 0:
        raise InputError(f"frames must be >= 0 and steps >= 0 (0: the model's own), got frames={cfg.frames} "
                         f"steps={cfg.steps}")
    check_render(cfg.render)
    out = output_file(cfg.out)
    with torch.no_grad():  # not set_grad_enabled(False): a failure would leave it off for the caller
        s = WorldSampler.load(cfg.ckpt, cfg.device)
        s.render = cfg.render
        return _sample(cfg, out, s)


def sampling_steps(s: Any) -> int:
    """Euler steps when `steps=0`: a frame-causal model trained frame by frame from its clean past (teacher
    forcing) draws each frame as DreamEnv does, with its dreaming steps (1 for one trained at pure noise, the best
    next-frame PSNR measured); other models 16."""
    return s.dream_steps if s.one_at_a_time else 16


def _sample(cfg: SampleConfig, out: Path, s: Any) -> int:
    """Generate with the loaded sampler `s` and write `out` with its provenance."""
    prompt = cfg.prompt or (s.example_prompt() if cfg.mode in ("t2v", "t2i", "loop") else "")
    s.check_prompt(prompt)
    steps = cfg.steps or sampling_steps(s)
    kw = {"steps": steps, "seed": cfg.seed, "method": cfg.sampler, "cfg_text": cfg.cfg_text,
          "cfg_actions": cfg.cfg_actions}
    video = _generate(cfg, s, prompt, cfg.frames or s.frames, kw)
    extra = {"mode": cfg.mode, "prompt": prompt, "seed": cfg.seed, "steps": steps, "sampler": cfg.sampler,
             "cfg_text": cfg.cfg_text, "cfg_actions": cfg.cfg_actions}
    if out.suffix == ".png":
        import imageio.v3 as iio

        out.parent.mkdir(parents=True, exist_ok=True)
        from worldsim.provenance import GENERATED, sign

        iio.imwrite(out, video[0])
        sign(out, GENERATED, s.provenance(**extra))
        out.with_name(out.name + ".json").write_text(json.dumps(s.provenance(**extra), indent=1))
    else:
        s.write_video(video, out, **extra)
    print(json.dumps({"out": str(out), "frames": int(len(video)), "size": list(video.shape[1:3]), **extra}))
    return 0
