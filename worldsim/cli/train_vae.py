"""worldsim train-vae: train the video compression network (VAE) on one or more stores.

Reports reconstruction PSNR on held-out episodes (the last `val_episodes` of each store, or `val_store`), writes
metrics to OUT/metrics.jsonl and TensorBoard, checkpoints (safetensors + JSON) to OUT/checkpoints/. Running the same
command again resumes from the latest checkpoint.

examples:
  worldsim train-vae store=data/voxel64 steps=2000 out=runs/vae64
  worldsim train-vae store=[data/a,data/b] vae.temporal=4 batch_size=8 out=runs/vae_t4
  worldsim train-vae store=data/voxel128 vae.spatial=8 vae.channels=[32,64,128,128] out=runs/vae128
"""

from __future__ import annotations

import json

from worldsim.cli import build
from worldsim.errors import InputError


def main(raw) -> int:
    from worldsim.cli.common_train import as_list, positive
    from worldsim.train.train_vae import TrainVAEConfig, VAEConfig, train_vae

    node = dict(raw)
    node["store"] = as_list(raw.store, "store")
    node["vae"] = build(VAEConfig, raw.vae, "vae config")
    cfg = build(TrainVAEConfig, node, "train-vae config")
    positive(cfg, "steps", "batch_size", "log_every", "eval_every", "save_every", "val_windows")
    if cfg.motion_weight < 0:
        raise InputError(f"motion_weight must be >= 0, got {cfg.motion_weight}")
    result = train_vae(cfg)
    print(json.dumps({"out": cfg.out, **result}))
    return 0
