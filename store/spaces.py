"""Gymnasium spaces rebuilt from a store's `action_spec` attribute (docs/architecture.md section 3), and the flat action
vectors the model sees. `worldsim` never imports the engines: the spec recorded in the store, and again in every
checkpoint, is how the learned simulator gets exactly the engine's spaces.

    space = space_from_spec(spec)          # e.g. Dict(forward: Discrete(2), ..., camera: Box(2,), hotbar: Discrete(10))
    vec = flatten_action(spec, action)     # (A,) float32 in the spec's `flat_keys` order, as stored
    spec = spec_from_space(space)          # any other game's space: the spec that rebuilds it exactly

Spec types and their columns in the flat vector: `Discrete` (one column holding the value, or with `one_hot` one
column per value: how other games' discrete actions are stored, so that "left" and "right" are not neighbours on a
line), `MultiDiscrete` (one-hot per entry), `MultiBinary` (0 / 1 per entry), `Box` (its values; `low` / `high` a
number or a list, "inf" / "-inf" for unbounded), `Tuple` and `Dict` of those (their parts in order). `flat_keys`
names every column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def _bound(v: Any, shape: tuple[int, ...]) -> float | np.ndarray:
    """A Box bound as the spec holds it: a number, or a list of numbers ("inf" / "-inf" allowed) of the Box's shape."""
    return np.asarray([float(x) for x in v], np.float64).reshape(shape) if isinstance(v, list) else float(v)


def space_from_spec(spec: dict[str, Any]) -> spaces.Space:
    """The gymnasium space described by an action spec (module docstring)."""
    kind = spec.get("type")
    if kind == "Dict":
        return spaces.Dict({k: space_from_spec(v) for k, v in spec["spaces"].items()})
    if kind == "Tuple":
        return spaces.Tuple([space_from_spec(v) for v in spec["spaces"]])
    if kind == "Discrete":
        return spaces.Discrete(int(spec["n"]), start=int(spec.get("start", 0)))
    if kind == "MultiDiscrete":
        shape = tuple(spec["shape"])
        start = np.asarray(spec.get("start", [0] * len(spec["nvec"])), np.int64).reshape(shape)
        return spaces.MultiDiscrete(np.asarray(spec["nvec"], np.int64).reshape(shape), start=start)
    if kind == "MultiBinary":
        shape = [int(v) for v in spec["shape"]]
        return spaces.MultiBinary(shape[0] if len(shape) == 1 else shape)
    if kind == "Box":
        shape = tuple(int(v) for v in spec["shape"])
        dtype = np.dtype(spec.get("dtype", "float32"))
        low, high = (np.broadcast_to(b, shape).astype(dtype) if isinstance(b, np.ndarray) else b
                     for b in (_bound(spec["low"], shape), _bound(spec["high"], shape)))
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    raise ValueError(f"action spec type {kind!r} is not supported (Dict, Tuple, Discrete, MultiDiscrete, MultiBinary, "
                     f"Box); spec: {spec}")


def flat_size(spec: dict[str, Any]) -> int:
    """Columns of the flat action vector."""
    kind = spec.get("type")
    if kind == "Dict":
        return sum(flat_size(v) for v in spec["spaces"].values())
    if kind == "Tuple":
        return sum(flat_size(v) for v in spec["spaces"])
    if kind == "Discrete":
        return int(spec["n"]) if spec.get("one_hot") else 1
    if kind == "MultiDiscrete":
        return int(sum(spec["nvec"]))
    return int(np.prod(spec["shape"]))


def _number(x: float) -> float | str:
    return float(x) if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def _names(prefix: str, n: int, labels: list[str] | None = None) -> list[str]:
    if n == 1 and labels is None:
        return [prefix]
    labels = labels if labels is not None and len(labels) == n else [str(i) for i in range(n)]
    return [f"{prefix}_{lab}" if prefix else lab for lab in labels]


def column_kinds(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """What each flat column holds, in stored order: ("binary", 1) for a 0/1 column (a Discrete(2) key, a MultiBinary
    entry, one value of a one-hot Discrete or MultiDiscrete), ("discrete", n) for a Discrete value column of n > 2
    values, ("continuous", 1) for a Box entry."""
    kind = spec.get("type")
    if kind == "Dict":  # keys in stored order (key_order), without building the space: gymnasium sorts them
        return [c for k in _order(spec, sorted(spec["spaces"])) for c in column_kinds(spec["spaces"][k])]
    if kind == "Tuple":
        return [c for sub in spec["spaces"] for c in column_kinds(sub)]
    if kind == "Discrete":
        n = int(spec["n"])
        if spec.get("one_hot"):
            return [("binary", 1)] * n
        return [("binary", 1)] if n == 2 else [("discrete", n)]
    if kind in ("MultiDiscrete", "MultiBinary"):
        return [("binary", 1)] * flat_size(spec)
    return [("continuous", 1)] * flat_size(spec)


def spec_from_space(space: spaces.Space, name: str = "action", labels: list[str] | None = None
                    ) -> dict[str, Any]:
    """The action spec (module docstring) that rebuilds `space` exactly, with `flat_keys` naming its columns
    (`name`, `name_<label>`; `labels`, e.g. Atari's action meanings, name a top-level Discrete's values).
    Discrete spaces of more than 2 values are stored one-hot.

    Raises:
        ValueError: a space kind that has no flat vector (Text, Graph, Sequence, ...), naming it.
    """
    spec, keys = _spec(space, name, labels)
    return {**spec, "flat_keys": keys}


def _spec(space: spaces.Space, name: str, labels: list[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)
        if n > 2:
            return {"type": "Discrete", "n": n, "start": start, "one_hot": True}, \
                _names(name, n, labels or [str(start + i) for i in range(n)])
        return {"type": "Discrete", "n": n, "start": start}, [name]
    if isinstance(space, spaces.MultiDiscrete):
        nvec, start = space.nvec.reshape(-1), space.start.reshape(-1)
        keys = [k for i, (v, s0) in enumerate(zip(nvec, start)) for k in _names(f"{name}_{i}", int(v),
                                                                               [str(s0 + j) for j in range(v)])]
        return {"type": "MultiDiscrete", "nvec": nvec.tolist(), "start": start.tolist(),
                "shape": list(space.shape)}, keys
    if isinstance(space, spaces.MultiBinary):
        shape = [int(v) for v in np.atleast_1d(space.n)]
        return {"type": "MultiBinary", "shape": shape}, _names(name, int(np.prod(shape)))
    if isinstance(space, spaces.Box):
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        same = bool((low == low[0]).all() and (high == high[0]).all()) and np.isfinite([low[0], high[0]]).all()
        spec = {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": float(low[0]) if same else [_number(v) for v in low],
                "high": float(high[0]) if same else [_number(v) for v in high]}
        return spec, _names(name, int(np.prod(space.shape)))
    if isinstance(space, spaces.Tuple):
        parts = [_spec(sub, f"{name}_{i}") for i, sub in enumerate(space.spaces)]
        return {"type": "Tuple", "spaces": [p[0] for p in parts]}, [k for p in parts for k in p[1]]
    if isinstance(space, spaces.Dict):
        parts = {k: _spec(sub, str(k)) for k, sub in space.spaces.items()}
        return {"type": "Dict", "spaces": {k: p[0] for k, p in parts.items()}}, [k for p in parts.values()
                                                                                   for k in p[1]]
    raise ValueError(f"{name}: a {type(space).__name__} action space has no fixed-size flat vector; worldsim records "
                     "Discrete, MultiDiscrete, MultiBinary, Box, and Dict / Tuple of those")


def key_order(spec: dict[str, Any], space: spaces.Dict) -> list[str]:
    """The Dict keys in the order of the stored flat vector: the spec's `flat_keys` (a Box key `camera` of size 2
    owns `camera_pitch`, `camera_yaw`). Not `space.spaces` order: gymnasium sorts a Dict's keys alphabetically, and
    checkpoints store the spec with sorted keys, while the engine's flat layout is its own (e.g. forward first)."""
    return _order(spec, list(space.spaces))


def _order(spec: dict[str, Any], keys: list[str]) -> list[str]:
    flat = spec.get("flat_keys")
    if not flat:
        return keys
    order: list[str] = []
    for fk in flat:
        owner = fk if fk in keys else max((k for k in keys if fk.startswith(k + "_")), key=len, default=None)
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
    if isinstance(space, spaces.Tuple):
        if not isinstance(action, tuple | list) or len(action) != len(space.spaces):
            raise ValueError(f"{name} must be a tuple of {len(space.spaces)} parts, got {action!r}")
        return np.concatenate([flatten_action(spec["spaces"][i], sub, action[i], f"{name}[{i}]")
                               for i, sub in enumerate(space.spaces)])
    if isinstance(space, spaces.Discrete):
        a = np.asarray(action)
        if a.shape != () or a.dtype.kind not in "biu" or not space.contains(int(a)):
            raise ValueError(f"{name} = {action!r} is not in {space} (an integer in [{space.start}, "
                             f"{space.start + space.n - 1}])")
        if spec.get("one_hot"):
            return np.eye(int(space.n), dtype=np.float32)[int(a) - int(space.start)]
        return np.array([float(a)], np.float32)
    if isinstance(space, spaces.MultiDiscrete | spaces.MultiBinary):
        a = np.asarray(action)
        if a.shape != space.shape or a.dtype.kind not in "biu" or not space.contains(a.astype(space.dtype)):
            raise ValueError(f"{name} = {a.tolist()} is not in {space}")
        if isinstance(space, spaces.MultiBinary):
            return a.reshape(-1).astype(np.float32)
        idx = (a - space.start).reshape(-1)
        return np.concatenate([np.eye(int(n), dtype=np.float32)[int(i)] for n, i in zip(space.nvec.reshape(-1), idx)])
    a = np.asarray(action, np.float32)
    whole = np.dtype(space.dtype).kind not in "iu" or bool(np.all(a == np.round(a)))
    if (a.shape != space.shape or not np.all(np.isfinite(a)) or not whole
            or not space.contains(a.astype(space.dtype) if whole and np.all(np.isfinite(a)) else a)
            or not np.all((a >= space.low) & (a <= space.high))):
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
    if isinstance(space, spaces.Tuple):
        out, i = [], 0
        for sub_spec, sub in zip(spec["spaces"], space.spaces):
            n = flat_size(sub_spec)
            out.append(unflatten_action(sub_spec, sub, vec[i : i + n]))
            i += n
        return tuple(out)
    if isinstance(space, spaces.Discrete):
        if spec.get("one_hot"):
            return int(space.start) + int(np.argmax(vec))
        return int(np.clip(round(float(vec[0])), space.start, space.start + space.n - 1))
    if isinstance(space, spaces.MultiBinary):
        return (vec > 0.5).astype(space.dtype).reshape(space.shape)
    if isinstance(space, spaces.MultiDiscrete):
        bounds = np.cumsum([0, *space.nvec.reshape(-1)])
        idx = [int(np.argmax(vec[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
        return (np.asarray(idx) + space.start.reshape(-1)).astype(space.dtype).reshape(space.shape)
    box = np.clip(vec.reshape(space.shape), space.low, space.high)
    return (np.round(box) if np.dtype(space.dtype).kind in "iu" else box).astype(space.dtype)
