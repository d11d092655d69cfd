"""Config pieces shared by the edge commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldsim.errors import InputError


@dataclass
class EnvConfig:
    """Which engine to run and its keyword arguments (configs/env/*.yaml)."""

    id: str = "worldsim/Voxel-v0"
    kwargs: dict[str, Any] = field(default_factory=dict)


def make_env(cfg: EnvConfig, **overrides: Any) -> Any:
    """Create the env of a config (registering the engines first)."""
    import envs

    return envs.make(cfg.id, **{**cfg.kwargs, **overrides})


def output_file(value: str, suffixes: tuple[str, ...] = (), key: str = "out") -> Path:
    """The file a command will write, checked before any work: the suffix it needs, not an existing folder, and a
    parent that is not a file. Raises InputError naming `key`."""
    path = Path(value)
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{key}={value} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        example = path / ("out" + (suffixes or (".mp4",))[0])
        raise InputError(f"{key}={value} is a folder; name a file in it (e.g. {key}={example})")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{key}={value} cannot be written: {parent} is a file, not a folder")
    return path
