"""Tiny gymnasium games for tests/test_games.py, registered on import and reached as `env=toy_games:ToyDict-v0`
(gymnasium's `module:EnvId` form): a Dict-action game whose frames are its observations, one whose observation is
not an image and that renders its frames, and two that worldsim must refuse."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ToyDictEnv(gym.Env):
    """A 24x32 frame whose colour follows the action: Dict(move: Discrete(3), fire: MultiBinary(2), aim: Box(2))."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, render_mode: str | None = None, size: int = 24) -> None:
        self.render_mode = render_mode
        self.size = size
        self.observation_space = spaces.Box(0, 255, (size, 32, 3), np.uint8)
        self.action_space = spaces.Dict({"move": spaces.Discrete(3), "fire": spaces.MultiBinary(2),
                                         "aim": spaces.Box(-1.0, 1.0, (2,), np.float32)})
        self.x = 0

    def _frame(self) -> np.ndarray:
        f = np.zeros((self.size, 32, 3), np.uint8)
        f[:, self.x % 32] = 255
        f[..., 1] = self.noise
        return f

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.x = int(self.np_random.integers(32))
        self.noise = self.np_random.integers(0, 50, (self.size, 32), dtype=np.uint8)
        return self._frame(), {"x": self.x, "blob": object()}

    def step(self, action):
        self.x += int(action["move"]) - 1 + int(action["fire"][0])
        self.noise = (self.noise + (np.asarray(action["aim"]) * 10).astype(np.uint8).sum()) % 50
        reward = 1.0 if self.x % 8 == 0 else 0.0
        return self._frame(), reward, False, False, {"x": self.x, "lives": 3 - (self.x % 3 == 0)}

    def render(self):
        return self._frame()


class ToyRenderEnv(ToyDictEnv):
    """Observations are two numbers; frames come from render() (rgb_array). Box actions."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, np.inf], np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.x += int(round(float(action[0])))
        return np.zeros(2, np.float32), 0.0, False, False, {}


class ToyNoFramesEnv(ToyRenderEnv):
    """No image observation and no rgb_array rendering: worldsim cannot record it."""

    metadata = {"render_modes": [], "render_fps": 15}

    def __init__(self) -> None:
        super().__init__(None)

    def render(self):
        return None


class ToyTextEnv(ToyDictEnv):
    """A Text action space: no fixed-size vector to record."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.action_space = spaces.Text(8)


for _name, _cls in (("ToyDict-v0", "ToyDictEnv"), ("ToyRender-v0", "ToyRenderEnv"),
                    ("ToyNoFrames-v0", "ToyNoFramesEnv"), ("ToyText-v0", "ToyTextEnv")):
    if _name not in gym.registry:
        gym.register(id=_name, entry_point=f"toy_games:{_cls}")
