"""Reward and termination model on held-out stores, as DreamEnv runs it: one table row per store.

    python benchmarks/reward_heldout.py --reward runs/dit/reward --store data/nav-heldout data/nav-solver-heldout
    python benchmarks/reward_heldout.py --reward runs/dit/reward --store data/h --given 4 --thresholds 0.5 0.3 0.1

Each held-out episode is run closed loop from its start (`worldsim.train.train_reward.evaluate`): the first `--given`
rewards are the recorded ones (a reset's context), the rest the model's own predictions, and only those are scored.
Columns: scored transitions, reward MAE, MAE of always predicting 0 and the ratio of the two (the issue's target:
at most 0.5), then termination recall and precision at each sigmoid threshold (the model's own is 0.5). The latents
come from the VAE of the world model the reward checkpoint was trained for (its meta `dit.path`, or `--ckpt`).
`--by-policy` adds a table per store: the same ratio over the episodes of each recording policy (a `mix` store
names one per episode), which says where the error is (e.g. a random walker far from an unseen goal).
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
    ap.add_argument("--by-policy", action="store_true", help="also the ratio per recording policy of the episodes")
    args = ap.parse_args()

    from worldsim.model.frames import to_model
    from worldsim.model.reward import load_reward
    from worldsim.runtime import autocast
    from worldsim.train.data import StoreSet
    from worldsim.train.train_reward import collect, load_world_vae, run_episodes, scores, track_scores

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
    breakdowns, tracks = [], []
    for url in args.store:
        data = collect(StoreSet([url], 2, "all"), encode, meta["spec"]["action_scale"], desc=f"encode {url}")
        hidden = [] if model.tracks else None
        idx, scored, unit, logit = run_episodes(model, data, cpu, args.given, hidden)  # once: scores and the rest
        m = scores(model, data, args.given, idx, scored, unit, logit)
        if hidden is not None:
            tracks.append((url, track_scores(model, data, idx, scored, hidden)))
        p, t = torch.sigmoid(logit)[scored], data.terminated[idx][scored]
        if args.by_policy:
            breakdowns.append((url, by_policy(model, data, idx, scored, unit, policies(url, len(idx)))))
        cells = []
        for th in args.thresholds:
            tp, pred = int(((p > th) & t).sum()), int((p > th).sum())
            cells.append(f"{tp}/{int(t.sum())} / {tp / pred if pred else float('nan'):.2f}")
        ratio = m["reward_mae"] / m["reward_mae_zero_baseline"] if m["reward_mae_zero_baseline"] else float("nan")
        print(f"| {url} | {m['transitions']} | {m['reward_mae']:.4f} | {m['reward_mae_zero_baseline']:.4f} | "
              f"{ratio:.2f} | {' | '.join(cells)} |")
    if tracks:
        keys = model.meta.get("task_state_keys") or [f"task[{i}]" for i in range(model.cfg.task_dim)]
        print("\nwhere the tracking head puts the task state (mean absolute error after each scored step; "
              "'start': the state of the episode's first frame kept):\n")
        moves = "move_mae" in tracks[0][1]  # odometry with the turn from the action: each step's move too
        extra = " | move error forward / right | forward step (model / data)" if moves else ""
        print("| store | " + " | ".join(f"{k} tracked | {k} start" for k in keys) + extra + " |")
        print("|---" * (1 + 2 * len(keys) + 2 * moves) + "|")
        for url, t in tracks:
            cells = [f"{a:.2f} | {b:.2f}" for a, b in zip(t["task_mae"], t["task_mae_start"])]
            if moves:
                cells.append("{:.3f} / {:.3f} | {:.3f} / {:.3f}".format(*t["move_mae"], *t["move_forward"]))
            print(f"| {url} | {' | '.join(cells)} |")
    for url, rows in breakdowns:
        print(f"\n{url}, by recording policy:\n")
        print("| policy | episodes | scored | MAE | zero MAE | ratio |\n|---|---|---|---|---|---|")
        for name, (episodes, n, mae, zero) in rows.items():
            ratio = mae / zero if zero else float("nan")
            print(f"| {name} | {episodes} | {n} | {mae:.4f} | {zero:.4f} | {ratio:.2f} |")


def by_policy(model, data, idx: torch.Tensor, scored: torch.Tensor, unit: torch.Tensor, names: list[str]
              ) -> dict[str, tuple[int, int, float, float]]:
    """Per recording policy (names: one per episode row of `run_episodes`): episodes, scored transitions, reward
    MAE and the MAE of predicting 0 over its episodes' scored transitions."""
    err = ((model.snap(model.reward(unit)) - data.rewards[idx]).abs() * scored).sum(1)
    zero, count = (data.rewards[idx].abs() * scored).sum(1), scored.sum(1)
    rows = {}
    for name in sorted(set(names)):
        m = torch.tensor([x == name for x in names])
        n = int(count[m].sum())
        rows[name] = (int(m.sum()), n, float(err[m].sum()) / max(n, 1), float(zero[m].sum()) / max(n, 1))
    return rows


def policies(url: str, episodes: int) -> list[str]:
    """The recording policy of each episode of a one-bucket store, in the order `collect` reads them."""
    from worldsim.train.data import StoreSet
    from worldsim.train.train_reward import episode_policies

    buckets = episode_policies(StoreSet([url], 2, "all"))[0]
    if len(buckets) != 1:
        raise SystemExit(f"--by-policy needs a store with one resolution bucket, {url} has {len(buckets)}")
    names = next(iter(buckets.values()))
    if len(names) != episodes:  # an episode of one frame has no transition
        raise SystemExit(f"{url}: {len(names)} episodes but {episodes} with transitions; --by-policy cannot match them")
    return names


if __name__ == "__main__":
    main()
