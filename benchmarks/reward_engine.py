"""The reward model paying the real engine: how close its reward is to the engine's, step by step, on the engine's
own frames, under the policies an agent trained against it would meet.

    python benchmarks/reward_engine.py --checkpoint runs/rlnav/navgoal --reward runs/rlnav/reward_turn \
        --goal-distance 4 10 --episodes 20 --policy random seeker solver

Each policy plays `--episodes` held-out engine episodes (seeds `--eval-seed`, +1, ...; `--max-steps` each) through
`worldsim.dream.wrappers.LearnedReward` with `ends=False`: the engine's episode runs to its own end whatever the
model says, and the model reads every step's frames and action. Policies: `random` (uniform over the NAVIGATE
table, a fresh draw every step: datagen's `TablePolicy` with repeat 0, as rl_dream.py's random agent), `seeker`
(datagen's frames-only scripted seeker) and `solver` (datagen's privileged navigate solver: it walks to the goal,
so its episodes hold the arrivals).

Columns: steps scored; per-step reward MAE against the engine's, the MAE of always predicting 0, and their ratio;
the correlation of the two rewards over steps and the slope of the model's on the engine's (least squares through
0: 1 pays each block as the engine does, below 1 pays less); the mean episode return by the engine and by the model;
arrival recall (the model terminates on the engine's arrival step), the mean reward the model and the engine pay on
the arrival steps, and false terminations per 100 steps; the goal
error at the episode's last step (|model's estimate - the engine's task state|, blocks; odometry models only).
The rewards of arrival steps (+1) are left out of the MAE, correlation and slope, which measure the shaping
(+0.05 per block closer); arrival has its own column. The column "its points" scores the model's own tracked goal
instead of its reward: the change of the estimate's distance each step, scaled by the engine's reward per block
(fitted on the engine's own distance changes), against the engine's reward (correlation, slope): what a reward read
off the tracked point would pay (`train-reward model.state_reward=true`).

`--by-action` adds, for the random policy, a table per NAVIGATE action: steps, the engine's forward step and the
odometry's (blocks, from the recorded task states and the model's estimates before and after, under the action's
own turn), and the mean |reward| the engine and the model pay.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np
import torch


def play(env: Any, act: Any, seed: int) -> dict[str, list[float]]:
    """One engine episode through LearnedReward (ends=False); per-step tallies (with a tracking model: the true and
    estimated distance change and forward step; with a table policy, `act.last`: the action's index)."""
    from worldsim.model.reward import RewardModel

    obs, info = env.reset(seed=seed)
    out: dict[str, list[float]] = {"model": [], "engine": [], "arrive": [], "term": []}
    done = False
    while not done:
        before = (np.asarray(info["task"]["state"][:2], np.float32), info.get("task_estimate"))
        action = act(obs, info) if callable(act) else act.act(info)
        obs, r, terminated, truncated, info = env.step(action)
        out["model"].append(r)
        out["engine"].append(info["engine_reward"])
        out["arrive"].append(float(info["engine_terminated"]))
        out["term"].append(float(info["model_terminated"]))
        if getattr(act, "last", None) is not None:
            out.setdefault("action", []).append(float(act.last))
        if before[1] is not None:
            after = (np.asarray(info["task"]["state"][:2], np.float32), info["task_estimate"][:2])
            turn = torch.tensor(np.deg2rad(float(np.asarray(action["camera"])[1])), dtype=torch.float32)
            for key, b, a in (("true", before[0], after[0]), ("est", before[1][:2], after[1])):
                out.setdefault(f"closer_{key}", []).append(float(np.linalg.norm(b) - np.linalg.norm(a)))
                step = RewardModel.step_of(torch.from_numpy(np.asarray(b, np.float32)),
                                           torch.from_numpy(np.asarray(a, np.float32)), turn)
                out.setdefault(f"fwd_{key}", []).append(float(step[0]))
        done = terminated or truncated
    if "task_estimate" in info:
        out["goal_err"] = [float(np.linalg.norm(np.asarray(info["task_estimate"][:2]) -
                                                np.asarray(info["task"]["state"][:2])))]
    return out


def policy(name: str, env: Any, rng: np.random.Generator) -> Any:
    """act(obs, info) -> an engine action of `name` (the engine's own Dict action); for `random`, a
    datagen.policies.TablePolicy (its `act(info)`)."""
    from datagen.policies import NavigateSolver, SeekerPolicy, TablePolicy

    if name == "random":  # a fresh draw every step, as an untrained PPO agent's; `last`: the entry's index
        return TablePolicy(rng, repeat=0.0)
    if name == "solver":
        solver = NavigateSolver(rng)
        return lambda obs, info: solver.act(info)
    seeker: list[Any] = []

    def seek(obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        if info.get("step", 0) == 0 or not seeker:  # a fresh seeker each episode
            seeker[:] = [SeekerPolicy(rng)]
        return seeker[0].act_on(obs, info)

    return seek


def joined(eps: list[dict[str, list[float]]]) -> dict[str, np.ndarray]:
    """Every episode's per-step tallies end to end (a tally only some episodes have: theirs)."""
    return {k: np.concatenate([np.asarray(e[k], np.float64) for e in eps if k in e]) for k in eps[0]}


def fit(m: np.ndarray, e: np.ndarray) -> tuple[float, float]:
    """(correlation, least-squares slope through 0) of m against e."""
    corr = float(np.corrcoef(m, e)[0, 1]) if m.std() > 0 and e.std() > 0 else float("nan")
    return corr, float((m * e).sum() / max((e * e).sum(), 1e-12))


def row(name: str, eps: list[dict[str, list[float]]]) -> str:
    cat = joined(eps)
    shaping = cat["arrive"] == 0
    m, e = cat["model"][shaping], cat["engine"][shaping]
    mae, zero = float(np.abs(m - e).mean()), float(np.abs(e).mean())
    corr, slope = fit(m, e)
    points = "-"
    if "closer_est" in cat:  # the estimate's distance change, in the engine's reward per block
        truth = cat["closer_true"][shaping]
        per_block = float((e * truth).sum() / max((truth * truth).sum(), 1e-12))
        points = "{:.2f}, {:.2f}".format(*fit(per_block * cat["closer_est"][shaping], e))
    arrivals = cat["arrive"] == 1
    recall = f"{cat['term'][arrivals].mean():.2f} ({int(arrivals.sum())})" if arrivals.any() else "- (0)"
    paid = f"{cat['model'][arrivals].mean():.2f} / {cat['engine'][arrivals].mean():.2f}" if arrivals.any() else "-"
    false = 100 * float(cat["term"][shaping].mean())
    ret_e = np.mean([sum(x["engine"]) for x in eps])
    ret_m = np.mean([sum(x["model"]) for x in eps])
    goal = f"{cat['goal_err'].mean():.2f}" if "goal_err" in cat else "-"
    return (f"| {name} | {len(cat['model'])} | {mae:.4f} | {zero:.4f} | {mae / max(zero, 1e-12):.2f} | {corr:.2f} | "
            f"{slope:.2f} | {points} | {ret_e:+.3f} | {ret_m:+.3f} | {recall} | {paid} | {false:.1f} | {goal} |")


def label(entry: dict[str, Any]) -> str:
    """A partial action's name in the --by-action table: its keys, the camera's yaw in degrees."""
    parts = [f"yaw {v[1]:+g}" if k == "camera" else k for k, v in entry.items()]
    return " + ".join(parts) or "no-op"


def by_action(eps: list[dict[str, list[float]]], names: list[str]) -> list[str]:
    """--by-action's table rows: per action of the table, steps, forward step (engine / odometry), mean |reward|
    (engine / model)."""
    cat = joined(eps)
    lines = []
    for i, name in enumerate(names):
        k = cat["action"] == i
        if not k.any():
            lines.append(f"| {name} | 0 | - | - |")
            continue
        fwd = f"{cat['fwd_true'][k].mean():+.3f} / {cat['fwd_est'][k].mean():+.3f}" if "fwd_est" in cat else "-"
        lines.append(f"| {name} | {int(k.sum())} | {fwd} | {np.abs(cat['engine'][k]).mean():.4f} / "
                     f"{np.abs(cat['model'][k]).mean():.4f} |")
    return lines


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
    ap.add_argument("--by-action", action="store_true", help="also a table per NAVIGATE action of the random policy")
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
    print("| policy | steps | MAE | zero MAE | ratio | corr | slope | its points: corr, slope | return (engine) | "
          "return (model) | arrival recall (arrivals) | arrival pay (model / engine) | false ends / 100 steps | "
          "goal error at the end |")
    print("|---" * 14 + "|")
    random_eps = None
    for name in args.policy:
        t0 = time.time()
        act = policy(name, engine, np.random.default_rng(args.seed))
        eps = [play(env, act, args.eval_seed + i) for i in range(args.episodes)]
        random_eps = eps if name == "random" else random_eps
        print(row(name, eps) + f" <!-- {time.time() - t0:.0f}s -->", flush=True)
    env.close()
    if args.by_action and random_eps is not None:
        from worldsim.dream.wrappers import NAVIGATE

        print("\n| action (random policy) | steps | forward step: engine / odometry | mean abs reward: engine / "
              "model |\n|---|---|---|---|")
        print("\n".join(by_action(random_eps, [label(e) for e in NAVIGATE])))


if __name__ == "__main__":
    from worldsim.errors import UserError

    try:
        main()
    except UserError as err:  # a bad path or run: one line, not a traceback
        raise SystemExit(f"reward_engine.py: {err}") from None
