"""Any gymnasium game as a worldsim data source: Atari (ale-py), ViZDoom, MiniGrid, Crafter, or any registered id.

    src = GameSource.make("ALE/Breakout-v5", kwargs={"repeat_action_probability": 0.0}, width=64, height=64)
    frame, info = src.reset(seed=0)            # frame (H, W, 3) uint8; info: the game's plain data + "events"
    frame, reward, terminated, truncated, info = src.step(src.action_space.sample())
    spec = json.loads(src.action_spec_json())  # rebuilds the game's exact action space (store/spaces.py)
    src.provenance()                           # package + version, env id and kwargs, ROM / scenario

Frames: the observation when it is an RGB image (H, W, 3) uint8, else the env's `render()` in `rgb_array` mode (the
env is made with that mode); native size unless `width` / `height` ask for another, then resized whole (area filter
when shrinking), never cropped. Ids of the game packages work by name: the package is imported (its registrations
with it) on first use; gymnasium's `module:EnvId` form works for any other package. `info` keeps what is plain data
(numbers, strings, booleans, small lists of them), and gains `events`: a `reward` event for every non-zero reward
and a `life_lost` event when `info["lives"]` drops.

Crafter (old gym API) goes through `CrafterEnv`, registered as `Crafter-v1` (`crafter/CrafterReward-v1` semantics:
64x64 frames, 17 discrete actions, achievement rewards).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import registry

from store.spaces import spec_from_space

# id prefix -> (module that registers the ids, the package to install); `worldsim[games]` installs them all
GAME_PACKAGES: list[tuple[str, str, str]] = [
    ("ALE/", "ale_py", "ale-py"),
    ("Vizdoom", "vizdoom.gymnasium_wrapper", "vizdoom"),
    ("MiniGrid-", "minigrid", "minigrid"),
    ("BabyAI-", "minigrid", "minigrid"),
    ("Crafter", "crafter", "crafter"),
]


class GameError(ValueError):
    """A game that cannot be a data source (unknown id, package missing, no image, unsupported action space)."""


def is_game(env_id: str) -> bool:
    """Whether `env_id` names another game than worldsim's own engines."""
    return not env_id.startswith("worldsim/")


def _package(env_id: str) -> tuple[str, str] | None:
    for prefix, module, dist in GAME_PACKAGES:
        if env_id.startswith(prefix):
            return module, dist
    return None


def register_game(env_id: str) -> None:
    """Make `env_id` known to gymnasium: import its game package (which registers its ids), or leave a
    `module:EnvId` id to gymnasium. Raises GameError (one line) naming what to install or how to register."""
    if ":" in env_id:
        module = env_id.split(":", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise GameError(f"env {env_id!r}: cannot import module {module!r} ({err})") from None
        return
    found = _package(env_id)
    if found is not None:
        module, dist = found
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise GameError(f"env {env_id!r} needs the game package {dist!r}, which is not installed: "
                            "pip install 'worldsim[games]' (or scripts/setup.sh)") from None
        if module == "ale_py":
            gym.register_envs(mod)
        if module == "crafter" and "Crafter-v1" not in registry:
            gym.register(id="Crafter-v1", entry_point="datagen.games:CrafterEnv")
    if env_id not in registry:
        raise GameError(f"unknown env id {env_id!r}: register it with gymnasium.register(id=..., entry_point=...) in "
                        "an importable module and pass env=module:EnvId, or use one of the game packages' ids "
                        f"({', '.join(p for p, _, _ in GAME_PACKAGES)}...)")


def _is_image(space: spaces.Space) -> bool:
    return (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and space.shape[-1] == 3)


def _plain(x: Any, depth: int = 0) -> Any:
    """x if it is plain data (JSON-able scalars, short lists / dicts of them), else None (dropped)."""
    if isinstance(x, bool | int | float | str) or x is None:
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray) and x.size <= 16:
        return x.tolist()
    if isinstance(x, list | tuple) and len(x) <= 16 and depth < 2:
        items = [_plain(v, depth + 1) for v in x]
        return items if all(v is not None for v in items) else None
    if isinstance(x, dict) and depth < 2:
        out = {str(k): _plain(v, depth + 1) for k, v in x.items()}
        return {k: v for k, v in out.items() if v is not None}
    return None


def resize(frame: np.ndarray, width: int | None, height: int | None) -> np.ndarray:
    """frame (H, W, 3) uint8 at (height, width); None keeps that side native. Area filter when shrinking."""
    h, w = frame.shape[:2]
    tw, th = width or w, height or h
    if (tw, th) == (w, h):
        return frame
    from PIL import Image

    method = Image.Resampling.BOX if tw <= w and th <= h else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(frame).resize((tw, th), method))


class GameSource:
    """A gymnasium game as a worldsim source: frames, the game's own action space and its spec, plain `info` with
    events, provenance. Made by `GameSource.make`."""

    def __init__(self, env: gym.Env, env_id: str, kwargs: dict[str, Any], width: int | None = None,
                 height: int | None = None) -> None:
        self.env, self.env_id, self.kwargs = env, env_id, dict(kwargs)
        self.width, self.height = width, height
        self.from_obs = _is_image(env.observation_space)
        if not self.from_obs and env.render_mode != "rgb_array":
            raise GameError(f"env {env_id!r}: its observation {env.observation_space} is not an RGB image and it "
                            "does not render rgb_array frames")
        self.action_space = env.action_space
        meanings = self.action_meanings()
        try:
            self.spec = spec_from_space(env.action_space, labels=meanings)
        except ValueError as err:
            raise GameError(f"env {env_id!r}: {err}") from None
        fps = env.metadata.get("render_fps") or 30
        self.metadata = {**env.metadata, "render_fps": int(round(fps))}
        self._lives: Any = None

    @classmethod
    def make(cls, env_id: str, kwargs: dict[str, Any] | None = None, width: int | None = None,
             height: int | None = None) -> GameSource:
        """`gymnasium.make(env_id, **kwargs)` as a source (rgb_array rendering asked for when the env offers it,
        unless kwargs set a render_mode). Raises GameError (one line) for an id, package, or space it cannot use."""
        register_game(env_id)
        kwargs = dict(kwargs or {})
        try:
            try:
                env = gym.make(env_id, **{"render_mode": "rgb_array", **kwargs})
            except TypeError:
                if "render_mode" in kwargs:
                    raise
                env = gym.make(env_id, **kwargs)  # no render_mode: frames must come from its observations
        except (TypeError, gym.error.Error) as err:
            raise GameError(f"env {env_id!r} with kwargs {kwargs}: {err}") from None
        return cls(env, env_id, kwargs, width, height)

    def action_meanings(self) -> list[str] | None:
        get = getattr(self.env.unwrapped, "get_action_meanings", None)
        if isinstance(self.env.action_space, spaces.Discrete) and callable(get):
            names = [str(m) for m in get()]
            return names if len(names) == self.env.action_space.n else None
        return None

    def action_spec_json(self) -> str:
        return json.dumps(self.spec)

    def _frame(self, obs: Any) -> np.ndarray:
        frame = obs if self.from_obs else self.env.render()
        if frame is None:
            raise GameError(f"env {self.env_id!r}: render() returned no frame")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise GameError(f"env {self.env_id!r}: a frame is {frame.dtype} {frame.shape}, not (H, W, 3) uint8")
        return np.ascontiguousarray(resize(frame, self.width, self.height))

    def _info(self, info: dict[str, Any], reward: float) -> dict[str, Any]:
        out = _plain(dict(info)) or {}
        events: list[dict[str, Any]] = []
        if reward != 0:
            events.append({"type": "reward", "value": float(reward)})
        lives = out.get("lives")
        if isinstance(lives, int | float) and self._lives is not None and lives < self._lives:
            events.append({"type": "life_lost", "lives": lives})
        self._lives = lives
        out["events"] = events
        return out

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        self._lives = None
        return self._frame(obs), self._info(info, 0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._frame(obs), float(reward), bool(terminated), bool(truncated), self._info(info, float(reward))

    def close(self) -> None:
        self.env.close()

    def deterministic(self) -> tuple[bool, str]:
        """Whether the same seed replays the same episode, and why (for the dataset card)."""
        sticky = self.kwargs.get("repeat_action_probability")
        if self.env_id.startswith("ALE/"):
            spec_sticky = registry[self.env_id].kwargs.get("repeat_action_probability", 0.25) if sticky is None \
                else sticky
            if float(spec_sticky) > 0:
                return False, (f"ALE sticky actions are on (repeat_action_probability={spec_sticky}), drawn from the "
                               "seeded ALE RNG: replays are the same for the same seed, but the recorded action is "
                               "not always the one executed")
            return True, "ALE with sticky actions off, seeded per episode"
        return True, "the env is reset with each episode's seed; games with unseeded randomness are not reproducible"

    def provenance(self) -> dict[str, Any]:
        """Where the frames come from: env id and kwargs, the game package and its version, ROM / scenario."""
        found = _package(self.env_id)
        module = found[0] if found else (self.env_id.split(":", 1)[0] if ":" in self.env_id else
                                         type(self.env.unwrapped).__module__)
        top = module.split(".")[0]
        dist = found[1] if found else top
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = getattr(importlib.import_module(top), "__version__", "unknown")
        deterministic, why = self.deterministic()
        out: dict[str, Any] = {"env_id": self.env_id, "kwargs": _plain(self.kwargs) or {}, "package": dist,
                               "package_version": version, "action_meanings": self.action_meanings(),
                               "observation": "observation" if self.from_obs else "render(rgb_array)",
                               "deterministic": deterministic, "determinism": why}
        game = self.env.unwrapped
        if self.env_id.startswith("ALE/"):
            out["rom"] = str(getattr(game, "_game", self.env_id.split("/")[1].split("-")[0]))
        scenario = getattr(game, "scenario_file", None) or getattr(getattr(game, "game", None),
                                                                    "get_doom_scenario_path", lambda: None)()
        if scenario:
            out["scenario"] = str(scenario).rsplit("/", 1)[-1]
        return out


class CrafterEnv(gym.Env):
    """Crafter (Hafner 2021; old gym API) as a gymnasium env: (64, 64, 3) uint8 frames, Discrete(17) actions,
    achievement rewards; `seed` at reset builds the world from that seed."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, size: int = 64, length: int = 10000, reward: bool = True, render_mode: str | None = None):
        import crafter

        self._make = lambda seed: crafter.Env(area=(64, 64), size=(size, size), length=length, reward=reward,
                                              seed=seed)
        self._env = self._make(0)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Discrete(int(self._env.action_space.n))
        self._obs: np.ndarray | None = None

    def get_action_meanings(self) -> list[str]:
        import crafter

        return list(crafter.constants.actions)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env = self._make(int(seed))
        self._obs = self._env.reset()
        return self._obs, {}

    def step(self, action: Any):
        obs, reward, done, info = self._env.step(int(action))
        self._obs = obs
        truncated = bool(done and info.get("discount", 0.0) == 1.0)  # the time limit, not death
        info = {"health": int(info["inventory"]["health"]), "achievements": {k: int(v) for k, v in
                                                                             info["achievements"].items() if v}}
        return obs, float(reward), bool(done and not truncated), truncated, info

    def render(self) -> np.ndarray | None:
        return self._obs


# -- a data policy trained in the game first ------------------------------------------------------------------------
class FramesEnv(gym.Env):
    """A GameSource as a gymnasium env of the frames it records (what `policy=ppo` trains on), cut at `steps`."""

    def __init__(self, src: GameSource, shape: tuple[int, ...], steps: int) -> None:
        self.src, self.steps, self.t = src, steps, 0
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = src.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.src.reset(seed=seed)[0], {}

    def step(self, action: Any):
        frame, reward, terminated, truncated, _ = self.src.step(action)
        self.t += 1
        return frame, reward, terminated, truncated or self.t >= self.steps, {}


def _ppo(env: gym.Env, seed: int, n_steps: int) -> Any:
    try:
        from stable_baselines3 import PPO
    except ImportError:
        raise GameError("policy=ppo needs stable-baselines3: pip install 'worldsim[rl]'") from None
    from stable_baselines3.common.logger import Logger

    small = min(env.observation_space.shape[:2]) < 36  # NatureCNN needs frames of at least 36 pixels
    model = PPO("MlpPolicy" if small else "CnnPolicy", env, n_steps=n_steps, batch_size=min(64, n_steps),
                n_epochs=4, seed=seed, device="cpu", verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty folder in /tmp per run
    return model


def _data_policy_env(job: Any) -> tuple[GameSource, FramesEnv]:
    src = GameSource.make(job.env_id, job.env_kwargs, job.width, job.height)
    if not isinstance(src.action_space, spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary | spaces.Box):
        src.close()
        raise GameError(f"policy=ppo: stable-baselines3 PPO does not take a {type(src.action_space).__name__} "
                        f"action space ({job.env_id}); use policy=random")
    shape = src.reset(seed=int(job.seed))[0].shape
    return src, FramesEnv(src, shape, max(int(job.steps), 1))


def _progress(total: int) -> Any:
    """A progress bar over PPO's env steps (training the data policy takes minutes)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class Bar(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, desc="policy=ppo: training the agent", unit="step")

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Bar()


def train_data_policy(job: Any) -> dict[str, np.ndarray]:
    """PPO (stable-baselines3) trained in the game for `job.ppo_steps` env steps on the frames the job records,
    seeded by the job's seed, on one torch thread (the same job trains the same weights). Returns its policy's
    weights (numpy arrays), which `PPODataPolicy` rebuilds in each worker."""
    import torch

    src, env = _data_policy_env(job)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _ppo(env, int(job.seed), n_steps=min(256, max(int(job.ppo_steps), 16)))
        model.learn(total_timesteps=int(job.ppo_steps), callback=_progress(int(job.ppo_steps)))
        return {k: v.detach().cpu().numpy().copy() for k, v in model.policy.state_dict().items()}
    finally:
        torch.set_num_threads(threads)
        src.close()


_POLICIES: dict[int, Any] = {}  # the rebuilt PPO of the job this worker records


class PPODataPolicy:
    """The trained policy's greedy action on the current frame, replaced by a sticky random action with probability
    `epsilon` (a draw from the episode's generator): data that reaches the states a random agent never sees, with
    enough variety around them. `act_on(frame, info)`."""

    def __init__(self, rng: np.random.Generator, src: GameSource, job: Any) -> None:
        import torch

        from datagen.policies import StickyRandomPolicy

        key = id(job.ppo_state)
        if key not in _POLICIES:  # once per worker and job
            torch.set_num_threads(1)  # one thread per recording worker: no oversubscription, the same actions anywhere
            shape = src.reset(seed=int(job.seed))[0].shape
            model = _ppo(FramesEnv(src, shape, max(int(job.steps), 1)), int(job.seed), n_steps=16)
            model.policy.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in job.ppo_state.items()})
            _POLICIES.clear()
            _POLICIES[key] = model
        self.model, self.rng, self.epsilon = _POLICIES[key], rng, float(job.ppo_epsilon)
        self.random = StickyRandomPolicy(rng, src.action_space)

    def act_on(self, frame: np.ndarray, info: dict) -> Any:
        explore = self.rng.random() < self.epsilon
        random_action = self.random.act(info)  # drawn every step: the generator's sequence does not depend on it
        if explore:
            return random_action
        action, _ = self.model.predict(frame, deterministic=True)
        return action.item() if isinstance(self.action_space, spaces.Discrete) else action

    @property
    def action_space(self) -> spaces.Space:
        return self.random.space
