"""worldsim train: train the text- and action-conditioned video DiT (the world model) on stores.

Needs a trained VAE (worldsim train-vae). Metrics go to OUT/metrics.jsonl (one JSON object per logged step with
`step` and `loss`) and TensorBoard; checkpoints (safetensors + JSON, with the VAE and the training stores' digests)
to OUT/checkpoints/; sample videos to OUT/samples/. Running the same command again resumes from the latest
checkpoint and continues exactly. Several processes: torchrun --nproc_per_node N -m worldsim.cli train ...

examples:
  worldsim train store=data/voxel64 vae=runs/vae64 model=tiny steps=2000 out=runs/dit64
  worldsim train store=data/voxel64 vae=runs/vae64 model.preset=S model.attention=factorized frames=16 out=runs/s
  torchrun --nproc_per_node 2 -m worldsim.cli train store=data/voxel64 vae=runs/vae64 steps=100 out=runs/ddp
  worldsim train init=runs/dit64 store=data/navigate64 vae=runs/vae64 steps=300 lr=0.0002 out=runs/nav-dit
      (fine-tuning: starts from runs/dit64's EMA weights and keeps its model, text and flow settings)
  worldsim train init=runs/recipe/dit store=runs/recipe/latents vae=runs/recipe/vae frames=14 steps=400 lr=0.0001
      warmup=20 adv_weight=0.3 adv_lr=0.001 adv_warmup=50 out=runs/sharp
      (a teacher-forced model fine-tuned with an adversarial term on its one-step frames: sharper dreams,
       docs/world_model.md)
"""

from __future__ import annotations

import json

from worldsim.cli import build


def main(raw) -> int:
    from worldsim.cli.common_train import as_list, positive
    from worldsim.model.dit import DiTConfig
    from worldsim.model.flow import FlowConfig
    from worldsim.model.world_model import TextConfig
    from worldsim.train.train_dit import TrainConfig, train

    node = dict(raw)
    node["store"] = as_list(raw.store, "store")
    node["model"] = build(DiTConfig, raw.model, "model config")
    node["text"] = build(TextConfig, raw.text, "text config")
    node["flow"] = build(FlowConfig, raw.flow, "flow config")
    cfg = build(TrainConfig, node, "train config")
    positive(cfg, "steps", "frames", "batch_size", "log_every", "save_every")
    cfg.model.resolved()  # unknown preset or bad shape: fail before loading anything
    result = train(cfg)
    if result["checkpoint"]:
        print(json.dumps({"out": cfg.out, **result}))
    return 0
