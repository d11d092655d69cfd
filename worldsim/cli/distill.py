"""worldsim distill: a smaller one-step student of a teacher-forced world model, for a faster DreamEnv.

The student is the teacher with fewer DiT blocks (depth, default a third), started from the teacher's weights (its
blocks copied from teacher blocks spread over the teacher's depth). It learns one thing, what DreamEnv asks: from
pure noise and a clean past, in one step, the frame the teacher draws with teacher_steps Euler steps from the same
noise and past, on the teacher's training windows (gt_weight > 0 mixes in the real frames). OUT defaults to
`<teacher run dir>/student`, a complete world model (the teacher's VAE, spec with fewer blocks, one Euler step by
default) whose checkpoint names its teacher (path, digest, steps, the blocks it started from). Point DreamEnv,
`worldsim eval` or `worldsim sample` at it like any run; it uses the teacher's light decoder when it has none.

examples:
  worldsim distill ckpt=runs/recipe/dit steps=500                       # -> runs/recipe/dit/student
  worldsim distill ckpt=runs/recipe/dit depth=2 teacher_steps=4 out=runs/student2
  python benchmarks/dream_speed.py --checkpoint runs/recipe/dit runs/recipe/dit/student --store runs/recipe/heldout
"""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from worldsim.cli import build
from worldsim.errors import InputError


def main(raw) -> int:
    from worldsim.cli.common_train import as_list, positive
    from worldsim.train.distill import DistillConfig, distill

    if OmegaConf.is_missing(raw, "ckpt") or not raw.ckpt:
        raise InputError("ckpt is required (ckpt=RUN_DIR of worldsim train, or one of its checkpoints)")
    node = dict(raw)
    node["store"] = [] if raw.store in (None, "") else as_list(raw.store, "store")
    cfg = build(DistillConfig, node, "distill config")
    positive(cfg, "steps", "batch_size", "lr", "log_every", "save_every")
    for name in ("depth", "teacher_steps", "gt_weight", "warmup"):
        if getattr(cfg, name) < 0:
            raise InputError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.ema < 1.0:
        raise InputError(f"ema must be in [0, 1), got {cfg.ema}")
    print(json.dumps(distill(cfg)))
    return 0
