"""Train an agent only inside the learned simulator, then score it in the real engine (docs/architecture.md
section 5, "Transfer"): PPO in DreamEnv vs PPO in the engine with the same budget vs a random agent, on held-out
engine seeds.

Lives in examples/ because it needs both the engine (envs) and the world model (worldsim): docs/architecture.md s. 2.
Run `python examples/rl_dream.py --help` for the whole recipe; docs/rl.md has a measured result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

EPILOG = """\
recipe (a navigate world model on a CPU; see docs/rl.md for times):
  worldsim generate task=navigate policy=mix episodes=32 steps=200 width=64 height=64 out=data/nav
  worldsim train-vae store=data/nav out=runs/nav-vae steps=800 vae.latent_channels=16
  worldsim train store=data/nav vae=runs/nav-vae out=runs/nav-dit model=tiny model.attention=causal steps=800 \\
      frames=8 batch_size=8 flow.p_context=0.9 'flow.context_kinds=[0.8,0,0,0.2]'
  worldsim train-reward ckpt=runs/nav-dit store=data/nav       # -> runs/nav-dit/reward, found by DreamEnv
  python examples/rl_dream.py --checkpoint runs/nav-dit --steps 20000 --out rl.json

what it does:
  1. dream: PPO (CnnPolicy) trains for --steps env steps in the learned simulator only: --n-envs dreams stepped in
     one batched model call (worldsim.DreamVectorEnv, the batched DreamEnv). Dreamed episodes start from a window of
     real frames of --store (default: the checkpoint's training store) and last --dream-episode-steps steps (short
     dreams drift less); rewards and terminations come from the reward model.
  2. engine: a second PPO, same hyper-parameters and budget, trains in worldsim/Voxel-v0 (task=navigate).
  3. score: both and a uniformly random agent play --eval-episodes engine episodes on held-out seeds
     (--eval-seed, --eval-seed + 1, ...; never used in training), --max-steps steps each.
  All three act through the same worldsim.dream.wrappers.DiscreteActions table (NAVIGATE: no-op, forward, forward+jump,
  turn left/right 15 deg, forward+steer left/right 5 deg, sprint forward).

metrics (engine, per agent): mean episode return (navigate: +0.05 per block closer to the goal pillar, +1 on
arrival), success rate (the episode terminated on arrival: the goal_reached event), mean blocks gained towards the
goal (start distance - end distance). Same --seed, same numbers (one torch thread).
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PPO trained only inside DreamEnv (a learned voxel simulator), scored in "
                                "the real engine against PPO trained in the engine and a random agent.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a `worldsim train` run dir (or checkpoint) of navigate data")
    p.add_argument("--reward", default=None, help="reward model (worldsim train-reward); default <run>/reward")
    p.add_argument("--store", default=None, help="frames store dreams start from; default: the checkpoint's store")
    p.add_argument("--steps", type=int, default=20000, help="env steps of PPO training, each agent (default 20000)")
    p.add_argument("--eval-episodes", type=int, default=20, help="held-out engine episodes per agent (default 20)")
    p.add_argument("--eval-seed", type=int, default=10_000, help="first held-out engine seed (default 10000)")
    p.add_argument("--max-steps", type=int, default=300, help="engine episode length, training and scoring (300)")
    p.add_argument("--dream-episode-steps", type=int, default=64, help="dreamed episode length (default 64)")
    p.add_argument("--dream-steps", type=int, default=None,
                   help="Euler steps per dreamed frame (default: the checkpoint's; 1 for one trained at pure noise)")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="dream autocast (default bf16)")
    p.add_argument("--n-envs", type=int, default=8, help="envs per PPO rollout, dream (one batch) and engine (8)")
    p.add_argument("--n-steps", type=int, default=128, help="PPO rollout steps per env (default 128)")
    p.add_argument("--policy", default="CnnPolicy", choices=["CnnPolicy", "MlpPolicy"],
                   help="SB3 policy (CnnPolicy's NatureCNN needs frames >= 36 px; MlpPolicy for tiny smoke runs)")
    p.add_argument("--sample", action="store_true", help="score with sampled actions (default: the argmax)")
    p.add_argument("--solver", action="store_true", help="also score datagen's scripted navigate solver (it reads "
                   "the goal position from info: a privileged reference, not a contender)")
    p.add_argument("--skip", nargs="*", default=[], choices=["dream", "engine"], help="agents not to train")
    p.add_argument("--seed", type=int, default=0, help="seeds PPO, the envs and the random agent (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: deterministic, no contention)")
    p.add_argument("--out", default="rl_dream.json", help="JSON results (default rl_dream.json)")
    args = p.parse_args(argv)
    for name in ("steps", "eval_episodes", "max_steps", "dream_episode_steps", "dream_steps", "n_envs", "n_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def checkpoint_size(checkpoint: str) -> tuple[int, int]:
    """(height, width) of the frames the world model makes (the engine is built at the same size)."""
    from worldsim.model.sampler import WorldSampler

    s = WorldSampler.load(checkpoint)
    return s.height, s.width


def default_store(checkpoint: str) -> str:
    """The first store the world model trained on (a latent store is fine: DreamEnv finds its frames)."""
    from worldsim.model import checkpoint as C

    stores = C.load_meta(C.resolve(checkpoint)).get("heldout", {}).get("stores") or []
    if not stores:
        raise SystemExit(f"{checkpoint} records no training store; pass --store STORE (navigate frames)")
    return str(stores[0] if isinstance(stores, list) else stores)


class DreamVecEnv(VecEnv):
    """SB3's VecEnv over `DreamVectorEnv` (all dreams in one batched model call) with the DiscreteActions table.

    SB3 resets a finished env within the same step (its obs is the new episode's first frame, the last frame goes in
    `info["terminal_observation"]`): DreamVectorEnv does the same with `autoreset_mode="same_step"`.
    """

    def __init__(self, venv: Any, table: list[dict[str, Any]]) -> None:
        self.venv, self.table = venv, table
        self._actions = np.zeros(venv.num_envs, np.int64)
        super().__init__(venv.num_envs, venv.single_observation_space, gym.spaces.Discrete(len(table)))

    def reset(self) -> np.ndarray:
        seeds = None if self._seeds[0] is None else [int(s) for s in self._seeds]
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        from worldsim.dream.wrappers import stack_actions

        obs, reward, terminated, truncated, info = self.venv.step(stack_actions(self.table, self._actions))
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
                                       for i in range(self.num_envs)]
        final = info.get("final_obs")
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = final[i]
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.venv, attr_name, None) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise NotImplementedError("DreamVecEnv has no per-env methods")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def make_dream(args: argparse.Namespace, store: str) -> VecEnv:
    """n_envs dreams in one DreamVectorEnv, as an SB3 VecEnv with the NAVIGATE table."""
    from worldsim import DreamVectorEnv
    from worldsim.dream.wrappers import NAVIGATE, action_table

    venv = DreamVectorEnv.from_checkpoint(args.checkpoint, num_envs=args.n_envs, reward=args.reward, store=store,
                          steps=args.dream_steps, max_episode_steps=args.dream_episode_steps, precision=args.precision,
                          autoreset_mode="same_step")
    return DreamVecEnv(venv, action_table(venv.single_action_space, NAVIGATE))


def make_engine(size: tuple[int, int], max_steps: int) -> gym.Env:
    import envs  # noqa: F401  (registers worldsim/Voxel-v0)
    from worldsim.dream.wrappers import NAVIGATE, DiscreteActions

    h, w = size
    return DiscreteActions(gym.make("worldsim/Voxel-v0", task="navigate", width=w, height=h,
                                    max_episode_steps=max_steps), NAVIGATE)


def train_ppo(venv: VecEnv, args: argparse.Namespace, log: str) -> tuple[Any, dict[str, Any]]:
    """PPO for args.steps env steps on `venv` (n_envs envs, episode stats from Monitor/VecMonitor); returns the model
    and a summary. Hyper-parameters: SB3's Atari-like PPO scaled to a short budget, the same for dream and engine."""
    batch = min(64, args.n_steps * args.n_envs)
    model = PPO(args.policy, venv, n_steps=args.n_steps, batch_size=batch, n_epochs=4, learning_rate=2.5e-4,
                ent_coef=0.01, gamma=0.99, gae_lambda=0.95, clip_range=0.2, seed=args.seed, device="cpu", verbose=0)
    returns: list[float] = []
    start = time.time()
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty folder in /tmp
    model.learn(total_timesteps=args.steps, callback=Progress(log, returns, args.steps))
    venv.close()
    tail = returns[-20:]
    return model, {"train_seconds": round(time.time() - start, 1), "train_episodes": len(returns),
                   "train_return_last20": float(np.mean(tail)) if tail else None}


class Progress(BaseCallback):
    """Collects finished episodes' returns (from Monitor) and prints a line after every rollout."""

    def __init__(self, name: str, returns: list[float], total: int) -> None:
        super().__init__()
        self.name, self.returns, self.total, self.t0 = name, returns, total, time.time()

    def _on_step(self) -> bool:
        self.returns += [float(i["episode"]["r"]) for i in self.locals["infos"] if "episode" in i]
        return True

    def _on_rollout_end(self) -> None:
        tail = self.returns[-20:]
        mean = f"{np.mean(tail):+.3f}" if tail else "n/a"
        print(f"[{self.name}] {self.num_timesteps}/{self.total} steps, {len(self.returns)} episodes, "
              f"return (last 20) {mean}, {time.time() - self.t0:.0f}s", flush=True)


def evaluate(act: Any, env: gym.Env, args: argparse.Namespace) -> dict[str, Any]:
    """Play args.eval_episodes engine episodes on the held-out seeds; act(obs, info) -> an action of `env`."""
    rets, success, gained = [], [], []
    for i in range(args.eval_episodes):
        obs, info = env.reset(seed=args.eval_seed + i)
        start, total, done, arrived = info["task"]["goal_distance"], 0.0, False, False
        while not done:
            obs, r, terminated, truncated, info = env.step(act(obs, info))
            total += r
            arrived = arrived or any(e["type"] == "goal_reached" for e in info["events"])
            done = terminated or truncated
        rets.append(total)
        success.append(arrived)
        gained.append(start - info["task"]["goal_distance"])
    return {"return_mean": float(np.mean(rets)), "return_std": float(np.std(rets)),
            "success_rate": float(np.mean(success)), "blocks_gained_mean": float(np.mean(gained)),
            "returns": [round(float(r), 4) for r in rets]}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| agent (trained in) | engine return | success | blocks gained | train steps | return while "
             "training (last 20) | train time |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        e = r["eval"]
        train = r.get("train", {})
        last = train.get("train_return_last20")
        lines.append(f"| {name} | {e['return_mean']:+.3f} +- {e['return_std']:.3f} | {e['success_rate']:.0%} | "
                     f"{e['blocks_gained_mean']:+.1f} | {train.get('steps', 0)} | "
                     f"{'-' if last is None else f'{last:+.3f}'} | {train.get('train_seconds', 0):.0f}s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    store = args.store or default_store(args.checkpoint)
    size = checkpoint_size(args.checkpoint)
    engine = make_engine(size, args.max_steps)
    results: dict[str, dict[str, Any]] = {}

    rng = np.random.default_rng(args.seed)
    n = engine.action_space.n
    results["random"] = {"eval": evaluate(lambda obs, info: int(rng.integers(n)), engine, args)}
    print(f"[random] engine return {results['random']['eval']['return_mean']:+.3f}", flush=True)
    if args.solver:  # a reference, not a contender: it reads the goal's position from info, agents see pixels only
        from datagen.policies import NavigateSolver

        solver = NavigateSolver(np.random.default_rng(args.seed))
        results["scripted solver (privileged)"] = {"eval": evaluate(lambda obs, info: solver.act(info), engine.env,
                                                                    args)}
    for name in ("dream", "engine"):
        if name in args.skip:
            continue
        if name == "dream":
            venv = VecMonitor(make_dream(args, store))
        else:
            venv = DummyVecEnv([lambda: Monitor(make_engine(size, args.max_steps)) for _ in range(args.n_envs)])
        model, summary = train_ppo(venv, args, name)
        torch.manual_seed(args.seed)  # sampled evaluation actions (--sample) are reproducible too

        def act(obs: np.ndarray, info: dict[str, Any], model: Any = model) -> int:
            return int(model.predict(obs, deterministic=not args.sample)[0])

        results[f"PPO ({name})"] = {"train": {"steps": int(model.num_timesteps), **summary},
                                    "eval": evaluate(act, engine, args)}
        print(f"[{name}] engine return {results[f'PPO ({name})']['eval']['return_mean']:+.3f}", flush=True)
    engine.close()

    md = table(results)
    print(md)
    out = {"config": {**vars(args), "store": store, "size": list(size)}, "results": results, "table": md,
           "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                       "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
           "wall_seconds": round(time.time() - t0, 1)}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out} ({out['wall_seconds']:.0f}s)")
    return out


if __name__ == "__main__":
    main()
