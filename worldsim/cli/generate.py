"""worldsim generate: record captioned, action-labelled episodes from an engine or any gymnasium game into a zarr store.

Resumable: if the job is killed (even with SIGKILL), run the same command again; it records only the missing
episodes and the finished store is byte-for-byte the same content (same digest) as an uninterrupted run.

examples:
  worldsim generate env=voxel episodes=8 steps=64 workers=2 seed=0 width=64 height=64 out=data/voxel64
  worldsim generate env=physics episodes=16 steps=90 policy=random task=observe out=data/physics
  worldsim generate env=voxel policy=solver task=navigate out=file:///tmp/nav    (fsspec URLs work too)
  worldsim generate env=ALE/Breakout-v5 env.kwargs.repeat_action_probability=0.0 width=64 height=64 out=data/breakout
                                      (any gymnasium game: Atari, ViZDoom, MiniGrid, Crafter-v1, or env=module:EnvId;
                                       pip install 'worldsim[games]'; sticky random actions; native size by default)
  worldsim generate env=ALE/Breakout-v5 policy=ppo ppo.steps=50000 ppo.epsilon=0.1 width=64 height=64 out=data/bo-ppo
                                      (PPO trained in the game first: data beyond what a random agent reaches)
  worldsim generate executor=ray workers=4 out=data/voxel          (Ray actors on a local Ray instance)
  worldsim generate executor=ray ray_address=auto out=/shared/voxel (a running cluster: every node needs worldsim
                                                                     and the store path)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from worldsim.cli import build
from worldsim.cli.common import EnvConfig
from worldsim.errors import InputError


@dataclass
class PPOConfig:
    steps: int = 20000  # env steps of PPO in the game before recording
    epsilon: float = 0.1  # share of sticky random actions mixed into the trained policy's


@dataclass
class GenerateConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    out: str = "outputs/dataset"
    episodes: int = 8
    steps: int = 64
    workers: int = 2
    seed: int = 0
    width: int | None = None  # None: 64 for the worldsim engines, the native size for other games
    height: int | None = None
    policy: str = "mix"
    ppo: PPOConfig = field(default_factory=PPOConfig)  # policy=ppo (other games)
    task: str | None = None
    segment_seconds: float = 2.0
    executor: str = "process"
    ray_address: str | None = None
    wait: bool = False  # another run writing out: wait for it (default: refuse at once, naming it)


def main(raw) -> int:
    from tqdm import tqdm

    from datagen.job import EXECUTORS, ExecutorError, run
    from datagen.policies import GAME_POLICIES, POLICIES
    from datagen.rollout import Job
    from store import StoreError

    cfg = build(GenerateConfig, raw, "generate config")
    cfg.env = build(EnvConfig, raw.env, "env config")
    cfg.ppo = build(PPOConfig, raw.ppo, "ppo config")
    from datagen.games import is_game

    game = is_game(cfg.env.id)
    if not game:
        cfg.width, cfg.height = cfg.width or 64, cfg.height or 64
    for name in ("episodes", "steps", "width", "height", "workers"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise InputError(f"{name} must be positive, got {getattr(cfg, name)}")
    if cfg.policy not in (GAME_POLICIES if game else POLICIES):
        if game:
            raise InputError(f"policy {cfg.policy!r} drives the worldsim engines; another game's data comes from "
                             f"policy={' or '.join(GAME_POLICIES)} (random / mix: sticky random actions; ppo: a PPO "
                             "agent trained in the game first)")
        raise InputError(f"unknown policy {cfg.policy!r}; choose one of {POLICIES}")
    if cfg.policy == "ppo" and (cfg.ppo.steps < 1 or not 0.0 <= cfg.ppo.epsilon <= 1.0):
        raise InputError(f"ppo.steps must be >= 1 and ppo.epsilon in [0, 1], got {cfg.ppo.steps} and "
                         f"{cfg.ppo.epsilon}")
    if cfg.executor not in EXECUTORS:
        raise InputError(f"unknown executor {cfg.executor!r}; choose one of {list(EXECUTORS)}")
    if cfg.segment_seconds <= 0:
        raise InputError(f"segment_seconds must be positive, got {cfg.segment_seconds}")
    kwargs = dict(cfg.env.kwargs)
    if cfg.task is not None:
        kwargs["task"] = cfg.task
    job = Job(env_id=cfg.env.id, env_kwargs=kwargs, width=cfg.width, height=cfg.height, episodes=cfg.episodes,
              steps=cfg.steps, seed=cfg.seed, policy=cfg.policy, segment_seconds=cfg.segment_seconds,
              ppo_steps=cfg.ppo.steps, ppo_epsilon=cfg.ppo.epsilon)
    bar = tqdm(total=cfg.episodes, desc="episodes", unit="ep", delay=0.5)  # delay: a quick error prints alone
    frames = [0]

    def progress(episodes: int, n_frames: int) -> None:
        frames[0] += n_frames
        bar.update(episodes)
        bar.set_postfix_str(f"{frames[0] / max(bar.format_dict['elapsed'], 1e-9):.0f} frames/s")

    try:
        attrs = run(job, cfg.out, cfg.workers, progress, executor=cfg.executor, ray_address=cfg.ray_address,
                    wait=cfg.wait)
    except (StoreError, ExecutorError) as err:
        raise InputError(str(err)) from None
    finally:
        bar.close()
    st = attrs["stats"]
    print(json.dumps({"out": cfg.out, "episodes": st["episodes"], "frames": st["frames"],
                      "resolutions": st["resolutions"], "digest": attrs["digest"]}))
    return 0
