"""The MineRL-compatible action space of the voxel world, its validation, and its flat form for datasets.

Keys (MineRL 0.4 names): `forward, back, left, right, jump, sneak, sprint, attack, use` are Discrete(2);
`camera` is Box(-180, 180, (2,)) in degrees [pitch, yaw] per step (positive pitch looks down, positive yaw turns
right); `hotbar` is Discrete(10): 0 keeps the selected slot, 1-9 select that slot (MineRL's `hotbar.1..9` keys).
Keys left out of an action mean "not pressed" (0, or no camera motion).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

BUTTONS = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack", "use")
FLAT_KEYS = (*BUTTONS, "camera_pitch", "camera_yaw", "hotbar")  # layout of the flat float vector


def action_space() -> spaces.Dict:
    """A fresh gymnasium Dict space of the voxel world's actions."""
    return spaces.Dict(
        {
            **{k: spaces.Discrete(2) for k in BUTTONS},
            "camera": spaces.Box(-180.0, 180.0, shape=(2,), dtype=np.float32),
            "hotbar": spaces.Discrete(10),
        }
    )


def noop() -> dict[str, Any]:
    """The action that does nothing."""
    return {**{k: 0 for k in BUTTONS}, "camera": np.zeros(2, dtype=np.float32), "hotbar": 0}


def parse(action: Mapping[str, Any]) -> tuple[dict[str, bool], float, float, int]:
    """Check an action and return (buttons, pitch delta, yaw delta, hotbar choice).

    Raises:
        ValueError: naming the offending key when a key is unknown or a value is out of range or mis-shaped.
    """
    if not isinstance(action, Mapping):
        raise ValueError(f"voxel action must be a dict with keys {sorted(action_space().spaces)}, "
                         f"got {type(action).__name__}")
    unknown = set(action) - set(BUTTONS) - {"camera", "hotbar"}
    if unknown:
        raise ValueError(f"unknown action key(s) {sorted(unknown)}; valid keys: {[*BUTTONS, 'camera', 'hotbar']}")
    buttons = {}
    for k in BUTTONS:
        v = action.get(k, 0)
        if type(v) is not int or v not in (0, 1):  # fast path for plain ints; numpy scalars checked below
            arr = np.asarray(v)
            if arr.shape != () or arr.dtype.kind not in "biu" or int(arr) not in (0, 1):
                raise ValueError(f"action[{k!r}] must be 0 or 1 (Discrete(2)), got {v!r}")
            v = int(arr)
        buttons[k] = bool(v)
    cam = np.asarray(action.get("camera", (0.0, 0.0)), dtype=np.float64)
    if cam.shape != (2,):
        raise ValueError(f"action['camera'] must have shape (2,) [pitch, yaw] in degrees, got shape {cam.shape}")
    if not np.all(np.isfinite(cam)) or np.any(np.abs(cam) > 180.0):
        raise ValueError(f"action['camera'] must be finite and within [-180, 180] degrees, got {cam.tolist()}")
    hb = np.asarray(action.get("hotbar", 0))
    if hb.shape != () or hb.dtype.kind not in "biu" or not 0 <= int(hb) <= 9:
        raise ValueError(f"action['hotbar'] must be an integer in [0, 9] (0 keeps the slot), got {action['hotbar']!r}")
    return buttons, float(cam[0]), float(cam[1]), int(hb)


def to_flat(action: Mapping[str, Any]) -> np.ndarray:
    """The flat float32 vector of an action, in `FLAT_KEYS` order. # (12,)"""
    buttons, pitch, yaw, hotbar = parse(action)
    return np.array([*(float(buttons[k]) for k in BUTTONS), pitch, yaw, float(hotbar)], dtype=np.float32)


def from_flat(vec: np.ndarray) -> dict[str, Any]:
    """Inverse of `to_flat`."""
    v = np.asarray(vec, dtype=np.float32).reshape(-1)
    if v.shape != (len(FLAT_KEYS),):
        raise ValueError(f"flat voxel action must have {len(FLAT_KEYS)} values {FLAT_KEYS}, got {v.shape}")
    out: dict[str, Any] = {k: int(round(float(v[i]))) for i, k in enumerate(BUTTONS)}
    out["camera"] = v[len(BUTTONS) : len(BUTTONS) + 2].astype(np.float32)
    out["hotbar"] = int(round(float(v[-1])))
    return out


def action_spec_json() -> str:
    """A JSON description of the space that rebuilds it (stored beside datasets)."""
    return json.dumps({
        "type": "Dict",
        "flat_keys": list(FLAT_KEYS),
        "spaces": {
            **{k: {"type": "Discrete", "n": 2} for k in BUTTONS},
            "camera": {"type": "Box", "low": -180.0, "high": 180.0, "shape": [2], "units": "degrees [pitch, yaw]"},
            "hotbar": {"type": "Discrete", "n": 10},
        },
    })
