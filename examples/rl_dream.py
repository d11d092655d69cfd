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
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

EPILOG = """\
recipe (a navigate world model on a CPU, fine-tuned from the voxel recipe's; docs/rl.md has the times):
  worldsim recipe out=runs/recipe                     # the reference voxel world model (runs/recipe/dit), ~60 min
  worldsim generate task=navigate policy=mix episodes=384 steps=160 seed=20000 width=64 height=64 out=data/nav
  worldsim generate task=navigate policy=solver episodes=96 steps=200 seed=30000 width=64 height=64 out=data/navs
  worldsim cache-latents store=data/nav vae=runs/recipe/vae out=data/nav_lat     # and data/navs -> data/navs_lat
  worldsim train init=runs/recipe/dit store=[data/nav_lat,data/navs_lat] vae=runs/recipe/vae out=runs/nav-dit \\
      steps=400 frames=14 lr=0.0003 warmup=20      # fine-tuning: the recipe model's design and weights
  worldsim train-reward ckpt=runs/nav-dit store=data/nav skip_policies=[NavigateSolver] seq_len=64 batch_size=8 \\
      steps=2000                                   # not the solver's episodes: its actions say where the goal is
  for s in 0 1 2; do                               # one process and one torch thread per seed, side by side
    python examples/rl_dream.py --checkpoint runs/nav-dit --steps 50000 --goal-distance 4 10 --sample \\
        --seeds $s --out rl_$s.json & done; wait
  python examples/rl_dream.py --merge rl_0.json rl_1.json rl_2.json --out rl.json   # mean and spread over seeds
                                                   # (--merge also joins a --skip engine run with a --skip dream one)

what it does:
  1. dream: PPO (CnnPolicy) trains for --steps env steps in the learned simulator only: --n-envs dreams stepped in
     one batched model call (worldsim.DreamVectorEnv, the batched DreamEnv). Dreamed episodes start from a window of
     real frames of --store (default: the checkpoint's training store) and last --dream-episode-steps steps
     (default 16: short dreams branched from real frames, as MBPO's model rollouts; with the odometry reward model
     16-step dreams scored above 8-step ones, and 8 above 32 with earlier models: docs/rl.md); rewards and
     terminations come from the reward model. PPO bootstraps the value at a dream's cut (a truncation, not an end).
     A world model with goal maps (worldsim train ... model.goal_map=true) draws the goal where the reward model's
     odometry puts it (docs/world_model.md, "Goal-conditioned dreams"), whatever the agent observes.
  2. engine: a second PPO, same hyper-parameters and budget, trains in worldsim/Voxel-v0 (task=navigate).
  3. score: both and a uniformly random agent play --eval-episodes engine episodes on held-out seeds
     (--eval-seed, --eval-seed + 1, ...; never used in training), --max-steps steps each.
  All three act through the same worldsim.dream.wrappers.DiscreteActions table (NAVIGATE: no-op, forward, forward+jump,
  turn left/right 15 deg, forward+steer left/right 5 deg, sprint forward).

metrics (engine, per agent): mean episode return (navigate: +0.05 per block closer to the goal pillar, +1 on
arrival), success rate (the episode terminated on arrival: the goal_reached event), mean blocks gained towards the
goal (start distance - end distance); each agent's mean over --seeds with its spread, and the transfer target: the
dream agent's return against the engine agent's (ratio) and against random. Same seed, same numbers (one torch
thread).
"""


OBSERVE = ("frames", "frames+goal", "goal")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PPO trained only inside DreamEnv (a learned voxel simulator), scored in "
                                "the real engine against PPO trained in the engine and a random agent.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a `worldsim train` run dir (or checkpoint) of navigate data (required "
                   "unless --merge)")
    p.add_argument("--reward", default=None, help="reward model (worldsim train-reward); default <run>/reward")
    p.add_argument("--store", default=None, help="frames store dreams start from; default: the checkpoint's store")
    p.add_argument("--steps", type=int, default=20000, help="env steps of PPO training, each agent (default 20000)")
    p.add_argument("--eval-episodes", type=int, default=20, help="held-out engine episodes per agent (default 20)")
    p.add_argument("--eval-seed", type=int, default=10_000, help="first held-out engine seed (default 10000)")
    p.add_argument("--max-steps", type=int, default=300, help="engine episode length, training and scoring (300)")
    p.add_argument("--goal-distance", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="engine navigate goal distance in blocks, training and scoring (default: the task's, 12 32)")
    p.add_argument("--dream-episode-steps", type=int, default=16,
                   help="dreamed episode length (default 16: long enough to pay the approach to a goal 4-10 blocks "
                        "away, short enough that the dream keeps ~70%% of the engine's reward margin; docs/rl.md)")
    p.add_argument("--dream-start", default="any", choices=["any", "first"],
                   help="where dreams start in --store's episodes: any window (default) or each episode's first "
                        "frames. With a store of engine episodes recorded from their resets (e.g. worldsim generate "
                        "task=navigate policy=table) 'first' starts every dream where the engine's episodes start "
                        "(the goal as far, the player at the spawn), as the engine agents' episodes do")
    p.add_argument("--dream-steps", type=int, default=None,
                   help="Euler steps per dreamed frame (default: the checkpoint's; 1 for one trained at pure noise)")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="dream autocast (default bf16)")
    p.add_argument("--render", default="carry", choices=["carry", "latent"],
                   help="how dreamed frames become the agent's pixels: pixel carry (DreamEnv's default) or the "
                        "latents decoded (docs/world_model.md, 'Pixel carry')")
    p.add_argument("--n-envs", type=int, default=8, help="envs per PPO rollout, dream (one batch) and engine (8)")
    p.add_argument("--n-steps", type=int, default=128, help="PPO rollout steps per env (default 128)")
    p.add_argument("--policy", default="CnnPolicy", choices=["CnnPolicy", "MlpPolicy"],
                   help="SB3 policy (CnnPolicy's NatureCNN needs frames >= 36 px; MlpPolicy for tiny smoke runs)")
    p.add_argument("--observe", default="frames", choices=OBSERVE,
                   help="what every PPO agent observes: the frame (default), the frame and where the goal is "
                        "(frames+goal: a compass, its offset along the view's forward and right axes / 10 blocks; "
                        "MultiInputPolicy), or the goal only (goal: MlpPolicy). The goal: in the engine, the task's "
                        "state; in the dream, the reward model's estimate (train-reward task_state=true "
                        "model.odometry=true; --store must record data/task_state)")
    p.add_argument("--blur", type=float, default=0.0, metavar="SIGMA",
                   help="every PPO agent sees its frames through a gaussian blur of this std in pixels, dream and "
                        "engine alike (default 0: none): the dream draws what it is unsure of blurred, the engine "
                        "sharp, and a policy trained on the one meets the other (docs/rl.md); the scripted "
                        "references see the engine's frames as they are")
    p.add_argument("--shift", type=int, default=0, metavar="PAD",
                   help="while training, every PPO agent sees each frame moved by a random offset of up to PAD "
                        "pixels each way (edges repeated; DrQ's random shift), dream and engine alike; scoring sees "
                        "frames as they are (default 0: off). Meant to keep a policy from keying on exact pixel "
                        "positions, since the dream draws the pillar and horizon a little off the engine's; "
                        "measured in docs/rl.md: within the seeds' spread")
    p.add_argument("--sample", action="store_true", help="score with sampled actions (default: the argmax)")
    p.add_argument("--solver", action="store_true", help="also score datagen's scripted navigate policies: the "
                   "solver (it reads the goal position from info: a privileged reference, not a contender) and the "
                   "seeker (frames only: scans for the pillar's colour, walks at it)")
    p.add_argument("--learned-engine", action="store_true",
                   help="also train PPO in the engine paid by the reward model instead of the engine's reward "
                        "(worldsim.dream.wrappers.LearnedReward: the model reads the engine's frames, as it reads "
                        "the dream's): the engine's pictures and dynamics with the dream's reward, which splits "
                        "what the transfer loses between the reward model and the dream")
    p.add_argument("--skip", nargs="*", default=[], choices=["dream", "engine"], help="agents not to train")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one run of every agent per seed (PPO, the envs, the random agent); the table gives the mean "
                        "and spread over seeds (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: deterministic, no contention)")
    p.add_argument("--out", default="rl_dream.json", help="JSON results (default rl_dream.json)")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="instead of training: one table over several runs' --out files of the same settings: other "
                        "--seeds (seeds run in parallel, one process and one torch thread each), or the same seeds "
                        "with other agents (a --skip engine run and a --skip dream one)")
    args = p.parse_args(argv)
    if args.merge is None and not args.checkpoint:
        p.error("--checkpoint is required (or --merge)")
    for name in ("steps", "eval_episodes", "max_steps", "dream_episode_steps", "dream_steps", "n_envs", "n_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.goal_distance is not None and not 2.0 <= args.goal_distance[0] <= args.goal_distance[1]:
        p.error(f"--goal-distance must be MIN MAX with 2 <= MIN <= MAX, got {args.goal_distance}")
    if not 0.0 <= args.blur <= 8.0:
        p.error(f"--blur must be a std in pixels in [0, 8], got {args.blur}")
    if not 0 <= args.shift <= 16:
        p.error(f"--shift must be a pad in pixels in [0, 16], got {args.shift}")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must differ, got {args.seeds}")
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

    def __init__(self, venv: Any, table: list[dict[str, Any]], observe: str = "frames", blur: float = 0.0,
                 shift: int = 0, seed: int = 0, options: dict[str, Any] | None = None) -> None:
        self.venv, self.table, self.observe, self.blur = venv, table, observe, blur
        self.options = dict(options or {})  # DreamVectorEnv's reset options, kept for its autoresets
        self.shift, self._shift_rng = shift, np.random.default_rng([seed, 1])
        self._actions = np.zeros(venv.num_envs, np.int64)
        super().__init__(venv.num_envs, observation_space(venv.single_observation_space, observe),
                         gym.spaces.Discrete(len(table)))

    def _obs(self, frames: np.ndarray, info: dict[str, Any]) -> Any:
        """What the agents observe (`observe`) of frames and the dream's estimate of the goal (each row's
        "task_state")."""
        frames = shifted(blurred(frames, self.blur), self.shift, self._shift_rng)
        if self.observe == "frames":
            return frames
        have = info.get("_task_state", np.zeros(self.num_envs, bool))
        if not np.all(have):
            raise SystemExit(f"--observe {self.observe}: the dream has no goal estimate (a reward model trained "
                             "with task_state=true model.odometry=true, and a --store that records data/task_state)")
        return observation(frames, np.stack(list(info["task_state"])), self.observe)

    def reset(self) -> Any:
        seeds = None if self._seeds[0] is None else [int(s) for s in self._seeds]
        obs, info = self.venv.reset(seed=seeds, options=self.options)
        self._reset_seeds()
        return self._obs(obs, info)

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
            ended = shifted(blurred(final[i], self.blur), self.shift, self._shift_rng)
            if self.observe != "frames":  # with the goal estimate at the end of the finished dream
                ended = observation(ended, info["final_info"]["task_state"][i], self.observe)
            infos[i]["terminal_observation"] = ended
        return self._obs(obs, info), reward.astype(np.float32), done, infos

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


def blurred(frames: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 frames (..., H, W, C) through a gaussian blur of std `sigma` pixels (`worldsim.model.frames.gaussian_blur`:
    separable, radius ceil(3 sigma), edges repeated); sigma 0 returns them as they are."""
    from worldsim.model.frames import gaussian_blur

    return gaussian_blur(frames, sigma)


class Blurred(gym.ObservationWrapper):
    """Engine frames as the agents see them with --blur (`blurred`)."""

    def __init__(self, env: gym.Env, sigma: float) -> None:
        super().__init__(env)
        self.sigma = sigma

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return blurred(observation, self.sigma)


def shifted(frames: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames (..., H, W, C), each moved by its own random offset of up to `pad` pixels along each axis, the
    edges repeated into the gap (DrQ's random shift: pad, then crop the original size at a random corner); pad 0
    returns them as they are. Offsets come from `rng`, one (dy, dx) pair per frame."""
    if pad <= 0:
        return frames
    h, w = frames.shape[-3:-1]
    flat = frames.reshape(-1, h, w, frames.shape[-1])
    padded = np.pad(flat, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    corners = rng.integers(0, 2 * pad + 1, size=(len(flat), 2))
    out = np.stack([p[y:y + h, x:x + w] for p, (y, x) in zip(padded, corners)])
    return out.reshape(frames.shape)


class Shifted(gym.ObservationWrapper):
    """Engine frames as the agents train on them with --shift (`shifted`, offsets from `seed`)."""

    def __init__(self, env: gym.Env, pad: int, seed: int) -> None:
        super().__init__(env)
        self.pad, self.rng = pad, np.random.default_rng([seed, 2])

    def observation(self, observation: Any) -> Any:
        if isinstance(observation, dict):  # --observe frames+goal: the frame moves, the compass does not
            return {**observation, "image": shifted(observation["image"], self.pad, self.rng)}
        return shifted(observation, self.pad, self.rng)


GOAL_SCALE = 10.0  # blocks: the goal observation's unit (--observe frames+goal, goal)


def goal_vector(state: Any) -> np.ndarray:
    """The task's state (navigate: the goal's offset along the view's forward and right axes, blocks) as the agents
    observe it: / GOAL_SCALE, clipped to +-10."""
    return np.clip(np.asarray(state, np.float32) / GOAL_SCALE, -10.0, 10.0)


def observation_space(frames: gym.Space, observe: str) -> gym.Space:
    """The agents' observation space for --observe: the frames' space, a Dict of "image" and "goal", or the goal's."""
    goal = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    return {"frames": frames, "frames+goal": gym.spaces.Dict({"image": frames, "goal": goal}), "goal": goal}[observe]


def observation(frame: np.ndarray, state: Any, observe: str) -> Any:
    """What the agents see (--observe) of a frame (or a batch) and the task's state (the goal's offset)."""
    if observe == "frames":
        return frame
    return goal_vector(state) if observe == "goal" else {"image": frame, "goal": goal_vector(state)}


class FramesAndGoal(BaseFeaturesExtractor):
    """--observe frames+goal's features: the frame through SB3's NatureCNN (--policy CnnPolicy) or flattened (MlpPolicy,
    tiny frames), and the goal vector beside it."""

    def __init__(self, space: gym.spaces.Dict, cnn: bool = True) -> None:
        image = space["image"]
        width = 512 if cnn else int(np.prod(image.shape))
        super().__init__(space, width + int(np.prod(space["goal"].shape)))
        self.body = NatureCNN(image, features_dim=width) if cnn else torch.nn.Flatten()

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.body(obs["image"]), obs["goal"].flatten(1)], dim=1)


class GoalObservation(gym.Wrapper):
    """Engine observations with the goal (--observe frames+goal or goal, `observation`, of info's task state):
    what the dream's agents see with the reward model's estimate in its place. `estimate`: the reward model's
    estimate instead (an engine paid by it, `LearnedReward`), as in the dream."""

    def __init__(self, env: gym.Env, observe: str, estimate: bool = False) -> None:
        super().__init__(env)
        self.observe, self.estimate = observe, estimate
        self.observation_space = observation_space(env.observation_space, observe)

    def _goal(self, info: dict[str, Any]) -> Any:
        return info["task_estimate"] if self.estimate else info["task"]["state"]

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return observation(obs, self._goal(info), self.observe), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return observation(obs, self._goal(info), self.observe), reward, terminated, truncated, info


def make_dream(args: argparse.Namespace, store: str, seed: int = 0) -> VecEnv:
    """n_envs dreams in one DreamVectorEnv, as an SB3 VecEnv with the NAVIGATE table (frames shifted with
    --shift, offsets drawn from `seed`; --dream-start first: every reset at an episode's first frame)."""
    from worldsim import DreamVectorEnv
    from worldsim.dream.wrappers import NAVIGATE, action_table

    venv = DreamVectorEnv.from_checkpoint(args.checkpoint, num_envs=args.n_envs, reward=args.reward, store=store,
                          steps=args.dream_steps, max_episode_steps=args.dream_episode_steps, precision=args.precision,
                          autoreset_mode="same_step", render=args.render)
    return DreamVecEnv(venv, action_table(venv.single_action_space, NAVIGATE), observe=args.observe, blur=args.blur,
                       shift=args.shift, seed=seed, options={"start": 0} if args.dream_start == "first" else None)


def make_engine(size: tuple[int, int], args: argparse.Namespace, train_seed: int | None = None,
                learned: tuple[Any, Any] | None = None) -> gym.Env:
    """The navigate engine as the agents play it (--observe, --blur, the NAVIGATE table); with `train_seed`, the
    training copy (frames shifted with --shift, offsets drawn from it); with `learned` (sampler, reward model),
    paid by the reward model reading its frames (`LearnedReward`; the goal observed is the model's estimate)."""
    import envs  # noqa: F401  (registers worldsim/Voxel-v0)
    from worldsim.dream.wrappers import NAVIGATE, DiscreteActions, LearnedReward

    h, w = size
    goal = {} if args.goal_distance is None else {"goal_distance": tuple(args.goal_distance)}
    env = gym.make("worldsim/Voxel-v0", task="navigate", width=w, height=h, max_episode_steps=args.max_steps, **goal)
    if learned is not None:
        env = LearnedReward(env, *learned)
    if args.blur > 0:
        env = Blurred(env, args.blur)
    if args.observe != "frames":
        env = GoalObservation(env, args.observe, estimate=learned is not None)
    if train_seed is not None and args.shift > 0:
        env = Shifted(env, args.shift, train_seed)
    return DiscreteActions(env, NAVIGATE)


def engine_itself(engine: gym.Env) -> gym.Env:
    """The engine under make_engine's wrappers (the agents' actions, goal and blur): what the scripted references
    play, with its own actions and frames."""
    from worldsim.dream.wrappers import DiscreteActions, LearnedReward

    while isinstance(engine, (DiscreteActions, Shifted, GoalObservation, Blurred, LearnedReward)):
        engine = engine.env
    return engine


def train_ppo(venv: VecEnv, args: argparse.Namespace, seed: int, log: str) -> tuple[Any, dict[str, Any]]:
    """PPO for args.steps env steps on `venv` (n_envs envs, episode stats from Monitor/VecMonitor); returns the model
    and a summary. Hyper-parameters: SB3's Atari-like PPO scaled to a short budget, the same for dream and engine."""
    batch = min(64, args.n_steps * args.n_envs)
    policy, kwargs = args.policy, {}
    if args.observe == "goal":
        policy = "MlpPolicy"
    elif args.observe == "frames+goal":
        policy = "MultiInputPolicy"
        kwargs = {"features_extractor_class": FramesAndGoal,
                  "features_extractor_kwargs": {"cnn": args.policy == "CnnPolicy"}}
    model = PPO(policy, venv, policy_kwargs=kwargs, n_steps=args.n_steps, batch_size=batch, n_epochs=4,
                learning_rate=2.5e-4, ent_coef=0.01, gamma=0.99, gae_lambda=0.95, clip_range=0.2, seed=seed,
                device="cpu", verbose=0)
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
        print(f"{self.name} {self.num_timesteps}/{self.total} steps, {len(self.returns)} episodes, "
              f"return (last 20) {mean}, {time.time() - self.t0:.0f}s", flush=True)


def evaluate(act: Any, env: gym.Env, args: argparse.Namespace) -> dict[str, Any]:
    """Play args.eval_episodes engine episodes on the held-out seeds; act(obs, info) -> an action of `env`."""
    rets, success, gained, starts = [], [], [], []
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
        starts.append(start)
    return {"return_mean": float(np.mean(rets)), "return_std": float(np.std(rets)),
            "success_rate": float(np.mean(success)), "blocks_gained_mean": float(np.mean(gained)),
            "start_distance_mean": float(np.mean(starts)),
            "returns": [round(float(r), 4) for r in rets]}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One agent over seeds: each seed's mean engine return, their mean and spread (std over seeds), success and
    blocks gained averaged over every scored episode."""
    per_seed = [r["eval"]["return_mean"] for r in runs]
    out = {"return_mean": float(np.mean(per_seed)), "return_std_over_seeds": float(np.std(per_seed)),
           "return_per_seed": [round(x, 4) for x in per_seed],
           "success_rate": float(np.mean([r["eval"]["success_rate"] for r in runs])),
           "blocks_gained_mean": float(np.mean([r["eval"]["blocks_gained_mean"] for r in runs]))}
    trains = [r["train"] for r in runs if "train" in r]
    if trains:
        last = [t["train_return_last20"] for t in trains if t["train_return_last20"] is not None]
        out.update(train_steps=trains[0]["steps"], train_seconds=float(np.mean([t["train_seconds"] for t in trains])),
                   train_return_last20=float(np.mean(last)) if last else None)
    return out


def verdict(summary: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The transfer target: the dream-trained agent's engine return against the engine-trained one's (ratio) and
    against random; `gain_ratio` = (dream - random) / (engine - random), the share of the engine agent's improvement
    over random that training in the dream reached; with the engine agent paid by the reward model
    (--learned-engine), its `learned_gain_ratio` the same way: what the learned reward alone keeps."""
    if "PPO (engine)" not in summary or ("PPO (dream)" not in summary and AGENT_ROWS["learned"] not in summary):
        return None
    e, r = summary["PPO (engine)"]["return_mean"], summary["random"]["return_mean"]
    out: dict[str, Any] = {}
    if "PPO (dream)" in summary:
        d = summary["PPO (dream)"]["return_mean"]
        out.update(ratio=d / e if e > 0 else None, gain_ratio=(d - r) / (e - r) if e > r else None,
                   dream_above_random=d > r, half_of_engine=e > 0 and d >= 0.5 * e)
    if AGENT_ROWS["learned"] in summary:
        learned = summary[AGENT_ROWS["learned"]]["return_mean"]
        out["learned_gain_ratio"] = (learned - r) / (e - r) if e > r else None
    return out


def table(summary: dict[str, dict[str, Any]], seeds: list[int]) -> str:
    lines = [f"| agent (trained in) | engine return, mean +- std over {len(seeds)} seed(s) | per seed | success | "
             "blocks gained | train steps | return while training (last 20) | train time |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        last = r.get("train_return_last20")
        per = " / ".join(f"{x:+.3f}" for x in r["return_per_seed"])
        lines.append(f"| {name} | {r['return_mean']:+.3f} +- {r['return_std_over_seeds']:.3f} | {per} | "
                     f"{r['success_rate']:.0%} | {r['blocks_gained_mean']:+.1f} | {r.get('train_steps', 0)} | "
                     f"{'-' if last is None else f'{last:+.3f}'} | {r.get('train_seconds', 0):.0f}s |")
    return "\n".join(lines)


def run_seed(args: argparse.Namespace, seed: int, store: str, size: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """Every agent once with `seed` (PPO's and the envs' seed, the random agent's draws), scored on the held-out
    engine seeds."""
    engine = make_engine(size, args)
    results: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(seed)
    n = engine.action_space.n
    results["random"] = {"eval": evaluate(lambda obs, info: int(rng.integers(n)), engine, args)}
    print(f"[seed {seed}] [random] engine return {results['random']['eval']['return_mean']:+.3f}", flush=True)
    if args.solver:  # references, not contenders; they play the engine's own (continuous) actions and frames
        plain = engine_itself(engine)
        from datagen.policies import NavigateSolver, SeekerPolicy

        solver = NavigateSolver(np.random.default_rng(seed))  # reads the goal's position from info
        results["scripted solver (privileged)"] = {"eval": evaluate(lambda obs, info: solver.act(info), plain,
                                                                    args)}
        seek_rng, seeker = np.random.default_rng(seed), []

        def seek(obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:  # reads the frame, as the agents do
            if info["step"] == 0:  # a new episode: a fresh policy (it remembers a bearing and a scan)
                seeker[:] = [SeekerPolicy(seek_rng)]
            return seeker[0].act_on(obs, info)

        results["scripted seeker (frames only)"] = {"eval": evaluate(seek, plain, args)}
    for name in ("dream", "engine", "learned"):
        if name in args.skip or (name == "learned" and not args.learned_engine):
            continue
        if name == "dream":
            venv = VecMonitor(make_dream(args, store, seed))
        else:  # the engine's envs; "learned": paid by the reward model (one sampler and model shared by the envs)
            from worldsim.dream.wrappers import LearnedReward

            parts = LearnedReward.parts(args.checkpoint, args.reward) if name == "learned" else None
            venv = DummyVecEnv([lambda i=i, parts=parts: Monitor(make_engine(size, args, train_seed=seed * 1000 + i,
                                                                learned=parts)) for i in range(args.n_envs)])
        model, summary = train_ppo(venv, args, seed, f"[seed {seed}] [{name}]")
        torch.manual_seed(seed)  # sampled evaluation actions (--sample) are reproducible too

        def act(obs: np.ndarray, info: dict[str, Any], model: Any = model) -> int:
            return int(model.predict(obs, deterministic=not args.sample)[0])

        row = AGENT_ROWS[name]
        results[row] = {"train": {"steps": int(model.num_timesteps), **summary}, "eval": evaluate(act, engine, args)}
        print(f"[seed {seed}] [{name}] engine return {results[row]['eval']['return_mean']:+.3f}", flush=True)
    engine.close()
    return results


# settings that may differ between runs merged into one table (--merge)
PER_RUN = ("seeds", "out", "merge", "merged", "threads")
# settings added since results were first written, with what the files written before them ran with
ADDED = {"blur": 0.0, "shift": 0, "learned_engine": False, "dream_start": "any"}
# which agents a run played: runs of the same seeds that played other agents merge agent by agent
AGENTS = ("skip", "solver", "learned_engine")
# the trained agents' rows
AGENT_ROWS = {"dream": "PPO (dream)", "engine": "PPO (engine)", "learned": "PPO (engine, learned reward)"}
# the table's rows, in run_seed's order (merged files may bring them in another)
ROWS = ("random", "scripted solver (privileged)", "scripted seeker (frames only)", *AGENT_ROWS.values())


def merged(files: list[str]) -> tuple[dict[str, Any], dict[int, dict[str, dict[str, Any]]], float]:
    """(config, results by seed, each file's wall seconds) of several --out files of the same experiment: other
    seeds (seeds run in parallel processes), or the same seeds with other agents (`--skip engine` in one run,
    `--skip dream` in another). A trained agent may come from one file only; an untrained one (random, scripted)
    that two files played for the same seed must have scored the same there."""
    runs = []
    for f in files:
        try:
            runs.append(json.loads(Path(f).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"--merge: {f} is not a readable rl_dream JSON ({err})") from None
    for r in runs:
        r["config"] = {**ADDED, **r["config"]}
    base = {k: v for k, v in runs[0]["config"].items() if k not in PER_RUN + AGENTS}
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for f, r in zip(files, runs):
        other = {k: v for k, v in r["config"].items() if k not in PER_RUN + AGENTS}
        diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
        if diff:
            raise SystemExit(f"--merge: {f} was run with other settings than {files[0]} ({', '.join(diff)})")
        for seed, res in r["seeds"].items():
            have = by_seed.setdefault(int(seed), {})
            for name, result in res.items():
                if name in have and ("train" in result or _untimed(have[name]) != _untimed(result)):
                    raise SystemExit(f"--merge: seed {seed}'s {name} is in more than one file"
                                     + ("" if "train" in result else " with other scores"))
                have.setdefault(name, result)
    names = {name for res in by_seed.values() for name in res}
    for seed, res in sorted(by_seed.items()):
        if set(res) != names:
            raise SystemExit(f"--merge: seed {seed} lacks {', '.join(sorted(names - set(res)))} (every seed needs "
                             "the same agents)")
    agents = {"skip": sorted(set.intersection(*(set(r["config"].get("skip", [])) for r in runs))),
              "solver": any(r["config"].get("solver", False) for r in runs),
              "learned_engine": any(r["config"].get("learned_engine", False) for r in runs)}
    return {**base, **agents, "seeds": sorted(by_seed), "merged": files}, by_seed, [r["wall_seconds"] for r in runs]


def _untimed(result: dict[str, Any]) -> dict[str, Any]:
    """An agent's results without its wall times (the rest is the same for the same seed and settings)."""
    return {part: {k: v for k, v in d.items() if k != "train_seconds"} for part, d in result.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.merge:
        config, by_seed, run_seconds = merged(args.merge)
        seeds = config["seeds"]
    else:
        store = args.store or default_store(args.checkpoint)
        size = checkpoint_size(args.checkpoint)
        by_seed = {seed: run_seed(args, seed, store, size) for seed in args.seeds}
        paths = {k: os.path.abspath(v) for k, v in (("checkpoint", args.checkpoint), ("reward", args.reward),
                                                     ("store", store)) if v}  # runs from other folders merge
        config, seeds, run_seconds = {**vars(args), **paths, "size": list(size)}, args.seeds, None
    names = sorted(by_seed[seeds[0]], key=lambda n: ROWS.index(n) if n in ROWS else len(ROWS))
    summary = {name: summarize([by_seed[s][name] for s in seeds]) for name in names}
    md = table(summary, seeds)
    target = verdict(summary)
    print(md)
    n_a = "n/a (engine not above random)"
    if target and "gain_ratio" in target:
        ratio = "n/a (engine return <= 0)" if target["ratio"] is None else f"{target['ratio']:.2f}"
        gain = n_a if target["gain_ratio"] is None else f"{target['gain_ratio']:.2f}"
        print(f"dream / engine return: {ratio}; (dream - random) / (engine - random): {gain}; "
              f"dream above random: {target['dream_above_random']}")
    if target and "learned_gain_ratio" in target:
        gain = n_a if target["learned_gain_ratio"] is None else f"{target['learned_gain_ratio']:.2f}"
        print(f"engine paid by the reward model: (learned - random) / (engine - random): {gain}")
    out = {"config": config, "summary": summary, "target": target,
           "seeds": {str(s): r for s, r in by_seed.items()}, "table": md,
           "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                       "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
           "wall_seconds": round(time.time() - t0, 1)}
    if run_seconds is not None:  # merged: each run's own wall time (runs side by side overlap)
        out["run_seconds"] = run_seconds
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out} ({out['wall_seconds']:.0f}s)")
    return out


if __name__ == "__main__":
    from worldsim.errors import UserError

    try:
        main()
    except UserError as err:  # a bad path or run: one line, not a traceback
        raise SystemExit(f"rl_dream.py: {err}") from None
