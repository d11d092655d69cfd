"""worldsim distill-decoder: distil a world model's VAE decoder into a light one for DreamEnv.

A small conv net (a few 3x3 convs and nearest-neighbour upsampling, about a tenth of the full decoder's work) learns
to draw what the full decoder draws from the same latents: store frames are encoded by the world model's VAE, a
little noise is added (dreamed latents are not exactly encoder latents), and the full decoder's frames are the
target. At the end it scores held-out frames: PSNR of the light decoder against the full one, and of each against
the real frames; printed as JSON and kept in the checkpoint. OUT defaults to `<run dir>/decoder`, where DreamEnv
finds it (`decoder=auto`, the default, uses it when it was distilled from this checkpoint's VAE).

examples:
  worldsim distill-decoder ckpt=runs/dit64 store=data/voxel64 steps=1500
  worldsim distill-decoder ckpt=runs/dit64 store=data/voxel64 val_store=data/voxel64-heldout decoder.width=32
"""

from __future__ import annotations

import json

from worldsim.cli import build
from worldsim.errors import InputError


def main(raw) -> int:
    from worldsim.cli.common_train import ckpt_and_stores, positive
    from worldsim.model.light_decoder import LightDecoderConfig
    from worldsim.train.train_decoder import TrainDecoderConfig, train_decoder

    node = ckpt_and_stores(raw)
    node["decoder"] = build(LightDecoderConfig, raw.decoder, "decoder config")
    cfg = build(TrainDecoderConfig, node, "distill-decoder config")
    positive(cfg, "steps", "batch_size", "lr", "log_every", "val_frames")
    if cfg.noise < 0:
        raise InputError(f"noise must be >= 0, got {cfg.noise}")
    print(json.dumps(train_decoder(cfg)))
    return 0
