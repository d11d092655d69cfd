"""worldsim train-detector: learn to tell engine-made clips from clips a world model dreamed.

Engine clips are windows of the `real` stores; model clips are what each checkpoint in `models` dreams after a few
real frames of such a window under its recorded actions (its default DreamEnv sampler). The last quarter of each
store's episodes, and every checkpoint in `unseen`, serve only the tests. Every clip is also trained on after an MP4
round trip, so `worldsim detect` holds on files. Prints JSON: held-out ROC AUC, and the true-positive rate and
accuracy at a 1% false-positive rate, raw and after MP4, and the same for each unseen checkpoint; the checkpoint
(OUT/checkpoints/, safetensors + JSON) records the models' and stores' digests and the thresholds.

examples:
  worldsim train-detector real=[runs/recipe/data,runs/recipe/heldout] models=[runs/a/dit,runs/b/dit] unseen=[runs/c/dit]
  worldsim detect outputs/sample.mp4 ckpt=outputs/detector
"""

from __future__ import annotations

import json

from worldsim.cli import build
from worldsim.errors import InputError


def main(raw) -> int:
    from omegaconf import OmegaConf

    from worldsim.cli.common_train import as_list, positive
    from worldsim.eval.detector import DetectorConfig, train_detector

    node = dict(raw)
    for key in ("real", "models"):
        if OmegaConf.is_missing(raw, key):
            raise InputError(f"{key} is required ({key}=PATH or {key}=[PATH,PATH])")
        node[key] = as_list(raw[key], key)
    node["unseen"] = [] if not raw.unseen else as_list(raw.unseen, "unseen")
    cfg = build(DetectorConfig, node, "train-detector config")
    positive(cfg, "frames", "context", "clips", "size", "steps", "batch_size", "lr", "width")
    if not 0.0 < cfg.heldout_share < 1.0:
        raise InputError(f"heldout_share must be in (0, 1), got {cfg.heldout_share}")
    print(json.dumps(train_detector(cfg)))
    return 0
