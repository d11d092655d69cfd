"""The reward model paying the real engine: how close its reward is to the engine's, step by step, on the engine's
own frames, under the policies an agent trained against it would meet.

    python benchmarks/reward_engine.py --checkpoint runs/rlnav/navgoal --reward runs/rlnav/reward_turn \
        --goal-distance 4 10 --episodes 20 --policy random seeker solver

Each policy plays `--episodes` held-out engine episodes (seeds `--eval-seed`, +1, ...; `--max-steps` each) through
`worldsim.dream.wrappers.LearnedReward` with `ends=False`: the engine's episode runs to its own end whatever the
model says, and the model reads every step's frames and action. Policies: `random` (uniform over the NAVIGATE
table, as rl_dream.py's random agent), `seeker` (datagen's frames-only scripted seeker) and `solver` (datagen's
privileged navigate solver: it walks to the goal, so its episodes hold the arrivals).

Columns: steps scored; per-step reward MAE against the engine's, the MAE of always predicting 0, and their ratio;
the correlation of the two rewards over steps and the slope of the model's on the engine's (least squares through
0: 1 pays each block as the engine does, below 1 pays less); the mean episode return by the engine and by the model;
arrival recall (the model terminates on the engine's arrival step) and false terminations per 100 steps; the goal
error at the episode's last step (|model's estimate - the engine's task state|, blocks; odometry models only).
The rewards of arrival steps (+1) are left out of the MAE, correlation and slope, which measure the shaping
(+0.05 per block closer); arrival has its own column.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np
import torch


def play(env: Any, act: Any, seed: int) -> dict[str, list[float]]:
    """One engine episode through LearnedReward (ends=False); per-step tallies."""
    obs, info = env.reset(seed=seed)
    out: dict[str, list[float]] = {"model": [], "engine": [], "arrive": [], "term": []}
    done = False
    while not done:
        obs, r, terminated, truncated, info = env.step(act(obs, info))
        out["model"].append(r)
        out["engine"].append(info["engine_reward"])
        out["arrive"].append(float(info["engine_terminated"]))
        out["term"].append(float(info["model_terminated"]))
        done = terminated or truncated
    if "task_estimate" in info:
        out["goal_err"] = [float(np.linalg.norm(np.asarray(info["task_estimate"][:2]) -
                                                np.asarray(info["task"]["state"][:2])))]
    return out


def policy(name: str, env: Any, rng: np.random.Generator) -> Any:
    """act(obs, info) -> an engine action of `name` (the engine's own Dict action)."""
    from datagen.policies import NavigateSolver, SeekerPolicy
    from worldsim.dream.wrappers import NAVIGATE, action_table

    if name == "random":
        table = action_table(env.action_space, NAVIGATE)
        return lambda obs, info: table[int(rng.integers(len(table)))]
    if name == "solver":
        solver = NavigateSolver(rng)
        return lambda obs, info: solver.act(info)
    seeker: list[Any] = []

    def seek(obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        if info.get("step", 0) == 0 or not seeker:  # a fresh seeker each episode
            seeker[:] = [SeekerPolicy(rng)]
        return seeker[0].act_on(obs, info)

    return seek


def row(name: str, eps: list[dict[str, list[float]]]) -> str:
    cat = {k: np.concatenate([np.asarray(e[k], np.float64) for e in eps if k in e]) for k in eps[0]}
    shaping = cat["arrive"] == 0
    m, e = cat["model"][shaping], cat["engine"][shaping]
    mae, zero = float(np.abs(m - e).mean()), float(np.abs(e).mean())
    corr = float(np.corrcoef(m, e)[0, 1]) if m.std() > 0 and e.std() > 0 else float("nan")
    slope = float((m * e).sum() / max((e * e).sum(), 1e-12))
    arrivals = cat["arrive"] == 1
    recall = f"{cat['term'][arrivals].mean():.2f} ({int(arrivals.sum())})" if arrivals.any() else "- (0)"
    false = 100 * float(cat["term"][shaping].mean())
    ret_e = np.mean([sum(x["engine"]) for x in eps])
    ret_m = np.mean([sum(x["model"]) for x in eps])
    goal = f"{cat['goal_err'].mean():.2f}" if "goal_err" in cat else "-"
    return (f"| {name} | {len(cat['model'])} | {mae:.4f} | {zero:.4f} | {mae / max(zero, 1e-12):.2f} | {corr:.2f} | "
            f"{slope:.2f} | {ret_e:+.3f} | {ret_m:+.3f} | {recall} | {false:.1f} | {goal} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--checkpoint", required=True, help="the world model run whose VAE the reward model reads")
    ap.add_argument("--reward", default=None, help="reward model (default <run>/reward)")
    ap.add_argument("--policy", nargs="+", default=["random", "seeker", "solver"],
                    choices=["random", "seeker", "solver"], help="who plays (default: all three)")
    ap.add_argument("--episodes", type=int, default=20, help="engine episodes per policy (default 20)")
    ap.add_argument("--eval-seed", type=int, default=10_000, help="first engine seed (default 10000)")
    ap.add_argument("--max-steps", type=int, default=300, help="engine episode length (default 300)")
    ap.add_argument("--goal-distance", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                    help="navigate goal distance in blocks (default: the task's, 12 32)")
    ap.add_argument("--seed", type=int, default=0, help="the policies' draws (default 0)")
    args = ap.parse_args()
    if args.episodes < 1 or args.max_steps < 1:
        ap.error("--episodes and --max-steps must be >= 1")

    import gymnasium as gym

    import envs  # noqa: F401  (registers worldsim/Voxel-v0)
    from worldsim.dream.wrappers import LearnedReward

    torch.set_num_threads(1)
    sampler, model = LearnedReward.parts(args.checkpoint, args.reward)
    goal = {} if args.goal_distance is None else {"goal_distance": tuple(args.goal_distance)}
    engine = gym.make("worldsim/Voxel-v0", task="navigate", width=sampler.width, height=sampler.height,
                      max_episode_steps=args.max_steps, **goal)
    env = LearnedReward(engine, sampler, model, ends=False)
    print(f"# reward model {args.reward or args.checkpoint + '/reward'} on the engine's frames, {args.episodes} "
          f"episodes x <= {args.max_steps} steps, goal {args.goal_distance or 'the task default'}; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| policy | steps | MAE | zero MAE | ratio | corr | slope | return (engine) | return (model) | "
          "arrival recall (arrivals) | false ends / 100 steps | goal error at the end |")
    print("|---" * 12 + "|")
    for name in args.policy:
        t0 = time.time()
        act = policy(name, engine, np.random.default_rng(args.seed))
        eps = [play(env, act, args.eval_seed + i) for i in range(args.episodes)]
        print(row(name, eps) + f" <!-- {time.time() - t0:.0f}s -->", flush=True)
    env.close()


if __name__ == "__main__":
    from worldsim.errors import UserError

    try:
        main()
    except UserError as err:  # a bad path or run: one line, not a traceback
        raise SystemExit(f"reward_engine.py: {err}") from None
