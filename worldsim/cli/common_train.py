"""Helpers shared by the model commands (train-vae, train, sample): config checks and user-facing errors."""

from __future__ import annotations

from typing import Any

from omegaconf import ListConfig

from worldsim.errors import InputError


def as_list(value: Any, name: str) -> list[str]:
    """`store=PATH` or `store=[A,B]` as a list of strings."""
    if value is None or value == "":
        raise InputError(f"{name} is required ({name}=PATH or {name}=[PATH,PATH])")
    items = list(value) if isinstance(value, ListConfig | list | tuple) else [value]
    return [str(v) for v in items]


def positive(cfg: Any, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) <= 0:
            raise InputError(f"{name} must be positive, got {getattr(cfg, name)}")
