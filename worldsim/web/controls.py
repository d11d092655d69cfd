"""Keys and mouse to engine actions, shared by the pygame window (`worldsim play`) and the browser (`worldsim serve`).

Keys are named as the browser's `KeyboardEvent.key`, lower-cased (`w`, `arrowleft`, ` `, `shift`, `control`); the
pygame window names its keys the same way.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

VOXEL_HELP = ("mouse (click the engine view to capture it) or arrow keys look around, W A S D move, Space jumps, "
              "Shift sneaks, Ctrl sprints, left / right mouse break / place, 1-9 pick a hotbar slot")
PHYSICS_HELP = "W A S D push the puck (screen directions), arrow keys orbit the camera, Q / E zoom"
ARROW_DEGREES = 10.0  # camera turn per step while an arrow key is held (voxel)


def voxel_action(keys: Collection[str], buttons: Collection[int] = (), mouse: tuple[float, float] = (0.0, 0.0),
                 sensitivity: float = 0.15, hotbar: int = 0) -> dict[str, Any]:
    """A Voxel-v0 action: `mouse` (dx, dy) in pixels turns the camera by `sensitivity` degrees per pixel, arrow keys
    by ARROW_DEGREES per step; `buttons` holds the pressed mouse buttons (0 left: attack, 2 right: use)."""
    k = {str(x).lower() for x in keys}
    dx = mouse[0] * sensitivity + ARROW_DEGREES * (("arrowright" in k) - ("arrowleft" in k))
    dy = mouse[1] * sensitivity + ARROW_DEGREES * (("arrowdown" in k) - ("arrowup" in k))
    return {
        "forward": int("w" in k), "back": int("s" in k), "left": int("a" in k), "right": int("d" in k),
        "jump": int(" " in k), "sneak": int("shift" in k), "sprint": int("control" in k),
        "attack": int(0 in buttons), "use": int(2 in buttons),
        "camera": np.clip(np.array([dy, dx], np.float32), -180, 180), "hotbar": int(hotbar),
    }


def physics_action(keys: Collection[str], azimuth_degrees: float, size: int) -> np.ndarray:
    """A Physics-v0 action: W A S D push the puck relative to the view (from the camera's azimuth), arrow keys orbit
    and tilt the camera, Q / E zoom; `size` is the action's length (2 pusher, 3 camera, 5 both)."""
    k = {str(x).lower() for x in keys}
    az = np.radians(azimuth_degrees)
    forward = -np.array([np.cos(az), np.sin(az)])  # from the camera towards the table, on the ground
    right = np.array([forward[1], -forward[0]])
    push = forward * (("w" in k) - ("s" in k)) + right * (("d" in k) - ("a" in k))
    cam = [("arrowright" in k) - ("arrowleft" in k), ("arrowup" in k) - ("arrowdown" in k), ("e" in k) - ("q" in k)]
    a = np.clip(np.array([*push, *cam], dtype=np.float32), -1, 1)
    if size == 2:
        return a[:2]
    return a[2:] if size == 3 else a


# Atari-style action meanings to keys (the first match wins; digits always pick an action by its number).
_MEANING_KEYS = (("UPRIGHT", {"arrowup", "arrowright"}), ("UPLEFT", {"arrowup", "arrowleft"}),
                 ("DOWNRIGHT", {"arrowdown", "arrowright"}), ("DOWNLEFT", {"arrowdown", "arrowleft"}),
                 ("FIRE", {" "}), ("UP", {"arrowup"}), ("RIGHT", {"arrowright"}), ("LEFT", {"arrowleft"}),
                 ("DOWN", {"arrowdown"}))


def discrete_action(keys: Collection[str], n: int, meanings: list[str] | None = None) -> int:
    """A Discrete(n) action: a digit key picks action 0-9 by number; with action meanings (Atari's NOOP, FIRE,
    LEFT, ...) the arrow keys and Space pick the action whose meaning they spell; nothing pressed is action 0."""
    k = {str(x).lower() for x in keys}
    digits = [int(x) for x in k if len(x) == 1 and x.isdigit() and int(x) < n]
    if digits:
        return max(digits)
    if meanings:
        for name, need in _MEANING_KEYS:
            if need <= k and name in meanings:
                return meanings.index(name)
    return 0


def discrete_help(n: int, meanings: list[str] | None) -> str:
    named = f" ({', '.join(f'{i} {m}' for i, m in enumerate(meanings[:10]))}); arrow keys and Space spell them" \
        if meanings else ""
    return f"digit keys 0-{min(n, 10) - 1} pick an action{named}; nothing pressed is action 0"
