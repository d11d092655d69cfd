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


def ckpt_and_stores(raw: Any) -> dict[str, Any]:
    """The config node of a command on a trained world model's stores (train-reward, distill-decoder): `ckpt` and
    `store` are required (named when missing), `store` becomes a list."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(raw, "ckpt") or not raw.ckpt:
        raise InputError("ckpt is required (ckpt=RUN_DIR of worldsim train, or one of its checkpoints)")
    if OmegaConf.is_missing(raw, "store"):
        raise InputError("store is required (store=PATH or store=[PATH,PATH])")
    node = dict(raw)
    node["store"] = as_list(raw.store, "store")
    return node
