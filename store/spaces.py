"""Gymnasium spaces rebuilt from a store's `action_spec` attribute (docs/architecture.md section 3), and the flat action
vectors the model sees. `worldsim` never imports the engines: the spec recorded in the store, and again in every
checkpoint, is how the learned simulator gets exactly the engine's spaces.

    space = space_from_spec(spec)          # e.g. Dict(forward: Discrete(2), ..., camera: Box(2,), hotbar: Discrete(10))
    vec = flatten_action(spec, action)     # (A,) float32 in the spec's `flat_keys` order, as stored
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def space_from_spec(spec: dict[str, Any]) -> spaces.Space:
    """The gymnasium space described by an action spec (Dict of Discrete and Box, or a Box)."""
    kind = spec.get("type")
    if kind == "Dict":
        return spaces.Dict({k: space_from_spec(v) for k, v in spec["spaces"].items()})
    if kind == "Discrete":
        return spaces.Discrete(int(spec["n"]), start=int(spec.get("start", 0)))
    if kind == "Box":
        return spaces.Box(float(spec["low"]), float(spec["high"]), shape=tuple(spec["shape"]), dtype=np.float32)
    raise ValueError(f"action spec type {kind!r} is not supported (Dict, Discrete, Box); spec: {spec}")


def flat_size(spec: dict[str, Any]) -> int:
    """Columns of the flat action vector."""
    kind = spec.get("type")
    if kind == "Dict":
        return sum(flat_size(v) for v in spec["spaces"].values())
    if kind == "Discrete":
        return 1
    return int(np.prod(spec["shape"]))


def key_order(spec: dict[str, Any], space: spaces.Dict) -> list[str]:
    """The Dict keys in the order of the stored flat vector: the spec's `flat_keys` (a Box key `camera` of size 2
    owns `camera_pitch`, `camera_yaw`). Not `space.spaces` order: gymnasium sorts a Dict's keys alphabetically, and
    checkpoints store the spec with sorted keys, while the engine's flat layout is its own (e.g. forward first)."""
    keys = list(space.spaces)
    flat = spec.get("flat_keys")
    if not flat:
        return keys
    order: list[str] = []
    for fk in flat:
        owner = fk if fk in space.spaces else max((k for k in keys if fk.startswith(k + "_")), key=len, default=None)
        if owner is None:
            raise ValueError(f"action spec flat key {fk!r} belongs to no key of the space {keys}")
        if owner not in order:
            order.append(owner)
    if sorted(order) != sorted(keys):
        raise ValueError(f"action spec flat_keys {flat} do not cover the space's keys {keys}")
    return order


def flatten_action(spec: dict[str, Any], space: spaces.Space, action: Any, name: str = "action") -> np.ndarray:
    """One action of `space` -> the flat float32 vector (A,) the store and the model use.

    Raises:
        ValueError: the action is not in the space (names the key and the value).
    """
    if isinstance(space, spaces.Dict):
        if not isinstance(action, dict):
            raise ValueError(f"{name} must be a dict with keys {list(space.spaces)}, got {type(action).__name__}")
        missing = [k for k in space.spaces if k not in action]
        if missing:
            raise ValueError(f"{name} is missing key(s) {missing}; the space is {space}")
        extra = sorted(str(k) for k in action if k not in space.spaces)
        if extra:  # a misspelt key would otherwise be dropped without a word
            raise ValueError(f"{name} has key(s) {extra} that the space does not have; its keys are "
                             f"{list(space.spaces)}")
        return np.concatenate([flatten_action(spec["spaces"][k], space[k], action[k], f"{name}[{k!r}]")
                               for k in key_order(spec, space)])
    if isinstance(space, spaces.Discrete):
        a = np.asarray(action)
        if a.shape != () or a.dtype.kind not in "biu" or not space.contains(int(a)):
            raise ValueError(f"{name} = {action!r} is not in {space} (an integer in [{space.start}, "
                             f"{space.start + space.n - 1}])")
        return np.array([float(a)], np.float32)
    a = np.asarray(action, np.float32)
    if a.shape != space.shape or not np.all(np.isfinite(a)) or not space.contains(a):
        raise ValueError(f"{name} = {np.asarray(action).tolist()} is not in {space} (shape {space.shape}, "
                         f"within [{space.low.min()}, {space.high.max()}])")
    return a.reshape(-1)


def unflatten_action(spec: dict[str, Any], space: spaces.Space, vec: np.ndarray) -> Any:
    """Inverse of `flatten_action` (discrete values rounded, Box values clipped into the space)."""
    vec = np.asarray(vec, np.float32).reshape(-1)
    if isinstance(space, spaces.Dict):
        out, i = {}, 0
        for k in key_order(spec, space):
            n = flat_size(spec["spaces"][k])
            out[k] = unflatten_action(spec["spaces"][k], space[k], vec[i : i + n])
            i += n
        return out
    if isinstance(space, spaces.Discrete):
        return int(np.clip(round(float(vec[0])), space.start, space.start + space.n - 1))
    return np.clip(vec.reshape(space.shape), space.low, space.high).astype(np.float32)
