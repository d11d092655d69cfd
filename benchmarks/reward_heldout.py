"""Reward and termination model on held-out stores, as DreamEnv runs it: one table row per store.

    python benchmarks/reward_heldout.py --reward runs/dit/reward --store data/nav-heldout data/nav-solver-heldout
    python benchmarks/reward_heldout.py --reward runs/dit/reward --store data/h --given 4 --thresholds 0.5 0.3 0.1

Each held-out episode is run closed loop from its start (`worldsim.train.train_reward.evaluate`): the first `--given`
rewards are the recorded ones (a reset's context), the rest the model's own predictions, and only those are scored.
Columns: scored transitions, reward MAE, MAE of always predicting 0 and the ratio of the two (the issue's target:
at most 0.5), then termination recall and precision at each sigmoid threshold (the model's own is 0.5). The latents
come from the VAE of the world model the reward checkpoint was trained for (its meta `dit.path`, or `--ckpt`).
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward", required=True, help="a worldsim train-reward run directory or checkpoint")
    ap.add_argument("--store", nargs="+", required=True, help="held-out frame stores of the same game")
    ap.add_argument("--ckpt", default=None, help="the world model whose VAE encodes (default: the reward's meta)")
    ap.add_argument("--given", type=int, default=4, help="recorded rewards given per episode (default 4)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5], help="termination thresholds")
    args = ap.parse_args()

    from worldsim.model.frames import to_model
    from worldsim.model.reward import load_reward
    from worldsim.runtime import autocast
    from worldsim.train.data import StoreSet
    from worldsim.train.train_reward import collect, evaluate, load_world_vae, unroll

    cpu = torch.device("cpu")
    model = load_reward(args.reward)
    vae, meta, _ = load_world_vae(args.ckpt or model.meta["dit"]["path"], cpu)

    @torch.no_grad()
    def encode(frames: np.ndarray) -> torch.Tensor:
        with autocast(cpu, "bf16"):
            return vae.encode(to_model(torch.from_numpy(frames))[:, None])[:, 0].float()

    print(f"# reward model {args.reward} ({model.meta.get('digest', '')[:12]}), state {model.cfg.state}, "
          f"{args.given} rewards given; {platform.processor() or platform.machine()}, torch {torch.__version__}")
    heads = " | ".join(f"recall / precision @{t}" for t in args.thresholds)
    print(f"| store | scored | MAE | zero MAE | ratio | {heads} |")
    print("|---" * (5 + len(args.thresholds)) + "|")
    for url in args.store:
        data = collect(StoreSet([url], 2, "all"), encode, meta["spec"]["action_scale"], desc=f"encode {url}")
        m = evaluate(model, data, cpu, args.given)
        first, last = data.runs()
        starts = torch.unique(first)
        span = torch.arange(int((last[starts] - starts + 1).max()))[None]
        idx = torch.minimum(starts[:, None] + span, last[starts][:, None])
        scored = (span < (last[starts] - starts + 1)[:, None]) & (span >= args.given)
        with torch.no_grad():
            _, logit = unroll(model, data, idx, torch.full((len(starts),), args.given))
        p, t = torch.sigmoid(logit)[scored], data.terminated[idx][scored]
        cells = []
        for th in args.thresholds:
            tp, pred = int(((p > th) & t).sum()), int((p > th).sum())
            cells.append(f"{tp}/{int(t.sum())} / {tp / pred if pred else float('nan'):.2f}")
        ratio = m["reward_mae"] / m["reward_mae_zero_baseline"] if m["reward_mae_zero_baseline"] else float("nan")
        print(f"| {url} | {m['transitions']} | {m['reward_mae']:.4f} | {m['reward_mae_zero_baseline']:.4f} | "
              f"{ratio:.2f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
