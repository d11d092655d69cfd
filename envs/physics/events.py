"""Events of a physics scene, detected from contacts and object states: what the captioner will describe.

Types: `collision` (the pair, the impulse in N*s at first contact, where), `fell_off_table`, `toppled`,
`came_to_rest`, `entered_view`, `left_view`. Each object raises `fell_off_table` and `toppled` at most once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.physics.scene import UPRIGHT_SHAPES, SceneSpec

IMPACT = 0.02  # N*s over a contact's first two samples: below this a touch is a gentle placement, not a collision
GAP = 3  # samples apart before a touching pair counts as separated
TOPPLE_DEG = 50.0
MOVING, RESTING = 0.05, 0.02  # m/s


class EventDetector:
    """Turns per-sample contacts and per-frame object states into events."""

    def __init__(self, spec: SceneSpec, names: dict[int, str]) -> None:
        self.spec, self.names = spec, names
        n = len(spec.objects)
        self.last_touch: dict[tuple[int, int], int] = {}  # pair -> index of the last sample it was in contact
        self.sample = 0
        self.fallen = np.zeros(n, bool)
        self.toppled = np.zeros(n, bool)
        self.watch_topple = np.array([o.shape in UPRIGHT_SHAPES for o in spec.objects])
        self.start_z = np.array([o.position[2] for o in spec.objects])
        self.half_height = np.array([o.half_height for o in spec.objects])
        self.moving = np.zeros(n, bool)  # set once an object is seen moving; cleared when it comes to rest
        self.still_frames = np.zeros(n, int)
        self.visible = np.zeros(n, bool)
        self.unseen_frames = np.zeros(n, int)
        self._pending: dict[tuple[int, int], list[Any]] = {}

    def contacts(self, sample: list[tuple[int, int, float, tuple[float, float, float]]], report: bool = True) -> None:
        """Feed the contacts of one sampled internal step (`report=False` while a new scene settles)."""
        self.sample += 1
        now: dict[tuple[int, int], list[Any]] = {}
        for a, b, impulse, pos in sample:
            key = (a, b) if a < b else (b, a)
            entry = now.setdefault(key, [0.0, pos])
            entry[0] += impulse
        for key, (impulse, pos) in now.items():
            # A pair is new only after GAP samples apart: resting contacts flicker, and that is not a collision.
            new = self.sample - self.last_touch.get(key, -GAP - 1) > GAP
            self.last_touch[key] = self.sample
            if new and report:
                self._pending[key] = [impulse, pos, self.sample]
            elif key in self._pending and self._pending[key][2] >= self.sample - 1:
                self._pending[key][0] += impulse  # the impact spans the first two samples of a contact

    def frame(self, pos: np.ndarray, rot: np.ndarray, lin: np.ndarray, ang: np.ndarray,
              pixels: np.ndarray) -> list[dict[str, Any]]:
        """Events of the frame that just ended (call once per frame, after its `contacts` calls)."""
        events: list[dict[str, Any]] = []
        for (a, b), (impulse, p, _) in sorted(self._pending.items()):
            if impulse >= IMPACT:
                events.append({"type": "collision", "a": a, "a_name": self.names.get(a, "?"), "b": b,
                               "b_name": self.names.get(b, "?"), "impulse": round(float(impulse), 4),
                               "pos": [round(float(v), 4) for v in p]})
        self._pending.clear()
        objs = self.spec.objects
        if self.spec.kind == "table":
            for i in np.flatnonzero(~self.fallen & (pos[:, 2] < -0.15)):
                self.fallen[i] = True
                events.append({"type": "fell_off_table", "id": objs[i].id, "name": objs[i].name})
        up = rot[:, :, 2]  # each body's local z axis in the world
        tilt = np.degrees(np.arccos(np.clip(up[:, 2], -1.0, 1.0)))
        dropped = np.array([o.in_tower for o in objs]) & (pos[:, 2] < self.start_z - self.half_height)
        topple = ~self.toppled & ((self.watch_topple & (tilt > TOPPLE_DEG)) | dropped)
        for i in np.flatnonzero(topple):
            self.toppled[i] = True
            events.append({"type": "toppled", "id": objs[i].id, "name": objs[i].name, "tilt": round(float(tilt[i]), 1)})
        speed = np.linalg.norm(lin, axis=1)
        spin = np.linalg.norm(ang, axis=1)
        self.moving |= speed > MOVING
        still = (speed < RESTING) & (spin < 0.3)
        self.still_frames = np.where(still, self.still_frames + 1, 0)
        for i in np.flatnonzero(self.moving & (self.still_frames >= 3)):
            self.moving[i] = False
            events.append({"type": "came_to_rest", "id": objs[i].id, "name": objs[i].name,
                           "pos": [round(float(v), 3) for v in pos[i]]})
        seen = pixels >= 3
        for i in np.flatnonzero(seen & ~self.visible):
            events.append({"type": "entered_view", "id": objs[i].id, "name": objs[i].name})
        self.unseen_frames = np.where(pixels == 0, self.unseen_frames + 1, 0)
        gone = self.visible & (self.unseen_frames >= 2)
        for i in np.flatnonzero(gone):
            events.append({"type": "left_view", "id": objs[i].id, "name": objs[i].name})
        self.visible = (self.visible & ~gone) | seen
        return events
