"""What the dream pays: the reward a DreamEnv gives under different action streams, from the same real starts,
beside the return the engine recorded. Run it before spending CPU hours on RL in the dream.

    python benchmarks/dream_reward.py --checkpoint runs/nav-dit --store data/nav-heldout --episodes 16 --horizon 32

For each of `--episodes` episodes of a held-out frame store: DreamEnv resets on the episode's first frames
(`options={"store", "episode", "start": 0}`), then dreams `--horizon` steps under
  recorded  the episode's own actions (the engine's return over the same steps is the `engine` column),
  random    uniformly drawn entries of the NAVIGATE table (worldsim.dream.wrappers),
  no-op     nothing pressed (the engine pays 0 for standing still in navigate),
  forward   always forward;
and sums the reward model's rewards (a dream ends early when the model says terminated). An agent can only learn in
the dream what this table separates: if the recorded (goal-seeking or not) actions earn no more than `forward` or
`random`, and their dream return does not follow the engine's episode by episode (Pearson r across episodes), PPO
in the dream climbs the reward model's bias, not the task.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="world model run (DreamEnv finds its reward model)")
    ap.add_argument("--store", required=True, help="held-out frame store of the same game (with rewards)")
    ap.add_argument("--episodes", type=int, default=16, help="episodes scored, the first N (default 16)")
    ap.add_argument("--horizon", type=int, default=32, help="dreamed steps per episode (default 32)")
    ap.add_argument("--reward", default=None, help="reward model (default: the checkpoint's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.episodes < 1 or args.horizon < 1:
        ap.error(f"--episodes and --horizon must be >= 1, got {args.episodes} and {args.horizon}")
    torch.set_num_threads(args.threads)

    from store.spaces import unflatten_action
    from worldsim import DreamEnv
    from worldsim.dream.wrappers import NAVIGATE, action_table
    from worldsim.eval.metrics import read_episode

    env = DreamEnv.from_checkpoint(args.checkpoint, reward=args.reward, store=args.store, max_episode_steps=None)
    if env.reward_model is None:
        raise SystemExit(f"{args.checkpoint} has no reward model (worldsim train-reward): nothing to measure")
    table = action_table(env.action_space, NAVIGATE)
    rng = np.random.default_rng(args.seed)
    kinds = ("recorded", "random", "no-op", "forward")
    dream: dict[str, list[float]] = {k: [] for k in kinds}
    engine: list[float] = []
    for i in range(args.episodes):
        ep = read_episode(args.store, i)
        for kind in kinds:
            env.reset(seed=args.seed + i, options={"store": args.store, "episode": i, "start": 0})
            seen = min(env.source.context, len(ep["frames"]))  # context frames given: frames[0:seen]
            steps = min(args.horizon, len(ep["frames"]) - seen)  # actions[t] leads from frame t to t + 1
            total = 0.0
            for k in range(steps):
                if kind == "recorded":
                    action = unflatten_action(env.action_spec, env.action_space, ep["actions"][seen - 1 + k])
                elif kind == "random":
                    action = table[int(rng.integers(len(table)))]
                else:
                    action = table[0 if kind == "no-op" else 1]
                _, r, terminated, _, _ = env.step(action)
                total += r
                if terminated:
                    break
            dream[kind].append(total)
        engine.append(float(np.sum(ep["rewards"][seen - 1 : seen - 1 + steps])))
    r = float(np.corrcoef(dream["recorded"], engine)[0, 1]) if np.std(dream["recorded"]) > 0 else float("nan")
    print(f"{args.checkpoint} on {args.store}: {args.episodes} episodes, {args.horizon} dreamed steps "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__})")
    print("| actions | dream return (reward model) | engine return (recorded) |")
    print("|---|---|---|")
    for kind in kinds:
        real = f"{np.mean(engine):+.3f} +- {np.std(engine):.3f}" if kind == "recorded" else \
            ("0 (standing still)" if kind == "no-op" else "-")
        print(f"| {kind} | {np.mean(dream[kind]):+.3f} +- {np.std(dream[kind]):.3f} | {real} |")
    print(f"Pearson r (dream vs engine, recorded actions, across episodes): {r:+.2f}")
    return {"dream": dream, "engine": engine, "r": r}


if __name__ == "__main__":
    main()
