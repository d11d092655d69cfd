"""Sky colour, sun and fog as a function of the time of day.

Time is in hours on a 24 h clock: sunrise at 6, noon at 12, sunset at 18, midnight at 0. Colours are
linear-ish RGB in [0, 1], blended between a few key states so dawn and dusk glow orange and night is dark blue.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# (sun elevation in [-1, 1], zenith colour, horizon colour, sun strength, ambient)
_KEYS = [
    (-1.00, (0.01, 0.02, 0.06), (0.03, 0.04, 0.10), 0.00, 0.18),
    (-0.15, (0.03, 0.05, 0.14), (0.10, 0.10, 0.20), 0.00, 0.22),
    (0.00, (0.20, 0.30, 0.55), (0.95, 0.55, 0.30), 0.25, 0.35),
    (0.20, (0.35, 0.55, 0.90), (0.75, 0.80, 0.90), 0.70, 0.45),
    (1.00, (0.30, 0.55, 0.95), (0.70, 0.82, 0.98), 0.85, 0.50),
]


@dataclass(frozen=True)
class SkyState:
    """Lighting of the scene at one time of day."""

    hours: float
    sun_direction: tuple[float, float, float]  # unit vector towards the sun (or the moon at night)
    zenith: tuple[float, float, float]
    horizon: tuple[float, float, float]
    sun_strength: float  # directional light intensity
    ambient: float  # ambient light intensity
    is_day: bool

    @property
    def fog_colour(self) -> tuple[float, float, float]:
        return self.horizon

    @property
    def phase(self) -> str:
        """A word for the time of day: night, dawn, morning, noon, afternoon, dusk."""
        h = self.hours
        if h < 5.0 or h >= 19.5:
            return "night"
        if h < 7.0:
            return "dawn"
        if h < 11.0:
            return "morning"
        if h < 14.0:
            return "noon"
        if h < 17.5:
            return "afternoon"
        return "dusk"


@functools.lru_cache(maxsize=4096)
def sky_state(hours: float) -> SkyState:
    """Sky and light for a time of day in hours (any real number; wrapped to [0, 24))."""
    hours = float(hours) % 24.0
    angle = 2 * math.pi * (hours - 6.0) / 24.0  # 0 at sunrise, pi/2 at noon
    elevation = math.sin(angle)
    # The sun travels east (+X) -> west (-X), tilted a little south so noon light is not straight down.
    sun = np.array([math.cos(angle), math.sin(angle), 0.25])
    sun /= np.linalg.norm(sun)
    if elevation < 0:  # the moon lights the night from the opposite side, faintly
        sun = -sun
    e = elevation
    for (e0, z0, h0, s0, a0), (e1, z1, h1, s1, a1) in zip(_KEYS, _KEYS[1:]):
        if e0 <= e <= e1:
            w = (e - e0) / (e1 - e0)
            zen = tuple(float(x + (y - x) * w) for x, y in zip(z0, z1))
            hor = tuple(float(x + (y - x) * w) for x, y in zip(h0, h1))
            strength, ambient = s0 + (s1 - s0) * w, a0 + (a1 - a0) * w
            break
    if elevation < 0:
        strength = 0.12  # moonlight
    return SkyState(hours, tuple(float(v) for v in sun), zen, hor, float(strength), float(ambient), elevation > 0)
