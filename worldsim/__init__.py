"""worldsim: an open synthetic-data game engine and learned world simulator.

Importing worldsim registers `worldsim/Dream-v0`: `gymnasium.make("worldsim/Dream-v0", checkpoint=PATH)`.
`worldsim.DreamEnv` and `worldsim.DreamVectorEnv` are imported on first use (torch loads only then).
"""

from typing import Any

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"
__all__ = ["DreamEnv", "DreamVectorEnv"]

if "worldsim/Dream-v0" not in registry:
    register(id="worldsim/Dream-v0", entry_point="worldsim.dream.env:make_dream_env",
             vector_entry_point="worldsim.dream.env:make_dream_vector_env", max_episode_steps=200)


def __getattr__(name: str) -> Any:
    if name in __all__:
        from worldsim.dream import env

        return getattr(env, name)
    raise AttributeError(f"module 'worldsim' has no attribute {name!r}")
