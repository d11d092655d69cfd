"""worldsim train-reward: train the reward and termination model that DreamEnv uses, on a world model's latents.

A small conv net reads the latents of the frame before and after each transition (the world model's own VAE) and
the action, and predicts the reward and whether the episode terminated; a GRU state (model.state, 0 = off) carries
what the episode showed so far, e.g. the bearing of an off-screen goal. It trains on sequences of seq_len
transitions run as DreamEnv runs it: the first 0..max_given carry their recorded rewards (a reset's context), the
rest the model's own predictions. Rare transitions (non-zero reward, terminated) are oversampled to a least share
of each batch. Reported on held-out episodes (the last `val_episodes` of each store, or `val_store`), each run from
its start with the first val_given rewards given and scored on the rest: reward MAE (and of predicting 0),
precision / recall of "reward != 0", termination precision / recall / F1; printed as one JSON line and stored in
the checkpoint. Writes OUT/checkpoints/ (safetensors
+ JSON, with the world model's and the stores' digests) and OUT/metrics.jsonl. OUT defaults to `<run dir>/reward`
of the world model, where DreamEnv finds it (`worldsim.model.reward.find_reward`).

examples:
  worldsim train-reward ckpt=runs/dit64 store=data/voxel64-navigate steps=2000
  worldsim train-reward ckpt=runs/dit64 store=[data/a,data/b] val_store=data/heldout out=runs/reward64
  worldsim train-reward ckpt=runs/dit64/checkpoints/step_0002500 store=data/voxel64 term_fraction=0.3 device=cpu
  worldsim train-reward ckpt=runs/dit64 store=data/voxel64 model.state=0     # each transition alone (no state)
  worldsim train-reward ckpt=runs/dit64 store=data/nav skip_policies=[NavigateSolver]   # not the privileged solver
  worldsim train-reward ckpt=runs/dit64 store=data/nav task_state=true   # the state starts from where the goal is
  worldsim train-reward ckpt=runs/dit64 store=data/nav dreams=2048 dream_ckpt=runs/nav-goal
      # also 2048 dreams of 16 steps along the stores' recorded actions, dreamed by the world model RL dreams with:
      # the reward model learns to read what the dream shows (worldsim/dream/replay.py), paid what the engine paid
  worldsim train-reward ckpt=runs/dit64 store=data/nav task_state=true model.odometry=true \\
      model.state_reward=true model.terminal_reward=true
      # shaping read off the tracked goal point, arrival (the step that ends the episode) paid by its own head,
      # which reads the frames as the termination does (docs/world_model.md "Arrival paid where the frames end it")
"""

from __future__ import annotations

import json

from worldsim.cli import build
from worldsim.errors import InputError


def main(raw) -> int:
    from worldsim.cli.common_train import as_list, ckpt_and_stores, positive
    from worldsim.model.reward import RewardConfig
    from worldsim.train.train_reward import TrainRewardConfig, check_config, train_reward

    node = ckpt_and_stores(raw)
    node["skip_policies"] = as_list(raw.skip_policies, "skip_policies") if raw.get("skip_policies") else []
    node["dream_store"] = as_list(raw.dream_store, "dream_store") if raw.get("dream_store") else []
    node["model"] = build(RewardConfig, raw.model, "reward model config")
    cfg = build(TrainRewardConfig, node, "train-reward config")
    positive(cfg, "steps", "batch_size", "seq_len", "log_every", "encode_batch", "lr", "pos_weight")
    for name in ("max_given", "val_given"):
        if getattr(cfg, name) < 0:
            raise InputError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    check_config(cfg)  # before minutes of encoding
    dreamer = None
    if cfg.dreams > 0:
        from worldsim.dream.replay import dream_runs as dreamer
    result = train_reward(cfg, dreamer)
    print(json.dumps(result))
    return 0
