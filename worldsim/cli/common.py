"""Config pieces shared by the edge commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EnvConfig:
    """Which engine to run and its keyword arguments (configs/env/*.yaml)."""

    id: str = "worldsim/Voxel-v0"
    kwargs: dict[str, Any] = field(default_factory=dict)


def make_env(cfg: EnvConfig, **overrides: Any) -> Any:
    """Create the env of a config (registering the engines first)."""
    import envs

    return envs.make(cfg.id, **{**cfg.kwargs, **overrides})
