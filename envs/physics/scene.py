"""Procedural physics scenes as plain data: what is where, made of what, seen from where, lit how.

`sample_scene(rng, ...)` is a pure function of the generator's state, so a seed names a scene. Units: metres,
kilograms, seconds; Z is up and the support surface (table top, or floor) is at z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from renderers.meshes import cone_points

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.12, 0.10), "green": (0.15, 0.62, 0.20), "blue": (0.12, 0.28, 0.85),
    "yellow": (0.95, 0.80, 0.10), "purple": (0.50, 0.20, 0.70), "orange": (0.95, 0.45, 0.08),
    "cyan": (0.10, 0.72, 0.80), "white": (0.92, 0.92, 0.92), "gray": (0.50, 0.50, 0.52),
    "brown": (0.45, 0.28, 0.14), "pink": (0.95, 0.55, 0.70), "black": (0.08, 0.08, 0.09),
}


@dataclass(frozen=True)
class Material:
    friction: float
    restitution: float
    density: float  # kg / m^3
    specular: float  # highlight strength when rendered


MATERIALS: dict[str, Material] = {
    "rubber": Material(0.95, 0.75, 1100.0, 0.05),
    "metal": Material(0.35, 0.25, 7800.0, 0.9),
    "wood": Material(0.60, 0.40, 650.0, 0.1),
    "plastic": Material(0.40, 0.55, 950.0, 0.35),
}
SHAPES = ("cube", "sphere", "cylinder", "capsule", "cone", "hull")
SPAWNS = ("drop", "throw", "tower", "ramp")
KINDS = ("table", "floor", "room")
UPRIGHT_SHAPES = frozenset({"cube", "cylinder", "capsule", "cone"})
TABLE = (1.2, 0.8)  # table top size (x, y), metres
TABLE_THICKNESS, TABLE_HEIGHT = 0.04, 0.75
FLOOR_EXTENT = 3.0  # floor (and room) half size when the scene is on the floor


@dataclass
class ObjectSpec:
    """One dynamic object. `size` is its half height / radius scale; `dims` the shape parameters."""

    id: int
    shape: str
    colour: str
    material: str
    size: float
    dims: dict[str, float]
    position: np.ndarray
    orientation: np.ndarray  # quaternion (x, y, z, w), pybullet order
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    points: np.ndarray | None = None  # convex vertices (cone, hull)
    in_tower: bool = False

    @property
    def name(self) -> str:
        """How captions call it: "red rubber sphere" (random convex hulls are called rocks)."""
        return f"{self.colour} {self.material} {'rock' if self.shape == 'hull' else self.shape}"

    @property
    def volume(self) -> float:
        d = self.dims
        if self.shape == "cube":
            return 8 * d["hx"] * d["hy"] * d["hz"]
        if self.shape == "sphere":
            return 4 / 3 * math.pi * d["r"] ** 3
        if self.shape == "cylinder":
            return math.pi * d["r"] ** 2 * d["h"]
        if self.shape == "capsule":
            return math.pi * d["r"] ** 2 * d["h"] + 4 / 3 * math.pi * d["r"] ** 3
        if self.shape == "cone":
            return math.pi * d["r"] ** 2 * d["h"] / 3
        # hull: volume of the bounding ellipsoid scaled down (a convex hull of points on it is a bit smaller)
        return 4 / 3 * math.pi * d["ax"] * d["ay"] * d["az"] * 0.6

    @property
    def mass(self) -> float:
        return self.volume * MATERIALS[self.material].density

    @property
    def half_height(self) -> float:
        d = self.dims
        return {"cube": d.get("hz", 0), "sphere": d.get("r", 0), "cylinder": d.get("h", 0) / 2,
                "capsule": d.get("h", 0) / 2 + d.get("r", 0), "cone": d.get("h", 0) / 4,
                "hull": d.get("az", 0)}[self.shape]


@dataclass
class SceneSpec:
    kind: str
    spawn: str
    objects: list[ObjectSpec]
    camera: dict[str, float]  # azimuth, elevation (degrees), distance (m), target_x, target_y, target_z
    light: dict[str, object]  # direction, strength, ambient
    ramp: dict[str, float] | None = None  # x, y, angle (degrees), length, width
    pusher_start: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def area(self) -> tuple[float, float]:
        """Half extents (x, y) of the usable support surface."""
        return (TABLE[0] / 2, TABLE[1] / 2) if self.kind == "table" else (1.0, 1.0)


def _quat_z(angle: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])


def _random_quat(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def _make_object(rng: np.random.Generator, oid: int, shape: str, size: float) -> ObjectSpec:
    colour = str(rng.choice(list(COLOURS)))
    material = str(rng.choice(list(MATERIALS)))
    dims: dict[str, float]
    points = None
    if shape == "cube":
        dims = {"hx": size, "hy": size, "hz": size}
    elif shape == "sphere":
        dims = {"r": size}
    elif shape in ("cylinder", "cone"):
        dims = {"r": size * rng.uniform(0.6, 1.0), "h": size * rng.uniform(1.6, 2.6)}
        if shape == "cone":
            points = cone_points(dims["r"], dims["h"])
    elif shape == "capsule":
        dims = {"r": size * rng.uniform(0.5, 0.75), "h": size * rng.uniform(0.8, 1.4)}
    else:  # random convex hull: points on a random ellipsoid
        dims = {"ax": size * rng.uniform(0.7, 1.2), "ay": size * rng.uniform(0.7, 1.2),
                "az": size * rng.uniform(0.6, 1.0)}
        d = rng.normal(size=(int(rng.integers(8, 13)), 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        points = d * np.array([dims["ax"], dims["ay"], dims["az"]]) * rng.uniform(0.8, 1.0, size=(len(d), 1))
        points -= points.mean(axis=0)
    return ObjectSpec(oid, shape, colour, material, float(size), {k: float(v) for k, v in dims.items()},
                      np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]), points=points)


def _free_spot(rng, placed: list[tuple[float, float, float]], half: tuple[float, float], radius: float,
               margin: float = 0.04) -> tuple[float, float] | None:
    for _ in range(300):
        x = rng.uniform(-half[0] + radius + margin, half[0] - radius - margin)
        y = rng.uniform(-half[1] + radius + margin, half[1] - radius - margin)
        if all(math.hypot(x - px, y - py) > radius + pr + 0.01 for px, py, pr in placed):
            return x, y
    return None


def _check_request(num_objects: int, spawn: str, kind: str, object_size: tuple[float, float]
                   ) -> tuple[float, float]:
    """Refuse a scene that cannot be built, naming the setting; returns the table or floor half sizes."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {KINDS}")
    if spawn not in SPAWNS:
        raise ValueError(f"unknown spawn mode {spawn!r}; choose one of {SPAWNS}")
    lo, hi = object_size
    if not 0.015 <= lo <= hi <= 0.3:
        raise ValueError(f"object_size must be (min, max) half sizes with 0.015 <= min <= max <= 0.3 m, "
                         f"got {object_size}")
    if not 1 <= num_objects <= 16:
        raise ValueError(f"num_objects must be between 1 and 16, got {num_objects}")
    half = (TABLE[0] / 2, TABLE[1] / 2) if kind == "table" else (1.0, 1.0)
    footprint = num_objects * math.pi * (1.3 * hi) ** 2
    if footprint > 0.5 * 4 * half[0] * half[1]:
        raise ValueError(f"{num_objects} objects of up to {hi} m do not fit on the {2 * half[0]:.1f} x "
                         f"{2 * half[1]:.1f} m {'table' if kind == 'table' else 'floor area'}; "
                         f"use fewer or smaller objects")
    return half


def _tower(rng: np.random.Generator, num_objects: int, lo: float, hi: float, objects: list[ObjectSpec],
           placed: list[tuple[float, float, float]]) -> None:
    """A stack of 3-6 cubes and cylinders near the middle (appended to `objects`, its footprint to `placed`)."""
    n_tower = min(num_objects, int(rng.integers(3, 7)))
    tx, ty = rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1)
    size = rng.uniform(lo, hi)
    z = 0.0
    for i in range(n_tower):
        shape = "cube" if rng.random() < 0.75 else "cylinder"
        o = _make_object(rng, i + 1, shape, size * rng.uniform(0.9, 1.0))
        z += o.half_height
        o.position = np.array([tx + rng.normal(0, 0.003), ty + rng.normal(0, 0.003), z])
        o.orientation = _quat_z(rng.uniform(-0.2, 0.2))
        o.in_tower = True
        z += o.half_height
        objects.append(o)
    placed.append((tx, ty, size * 1.6))


def _on_ramp(rng: np.random.Generator, o: ObjectSpec, i: int, ramp: dict[str, float]) -> None:
    """Put object `o` on the ramp's upper end: it slides or rolls down."""
    a = math.radians(ramp["angle"])
    along = 0.18 - 0.12 * (i % 3)
    o.position = np.array([ramp["x"] - along * math.cos(a), ramp["y"] + rng.uniform(-0.08, 0.08),
                           0.04 + (0.25 + along) * math.sin(a) + o.size])
    o.orientation = _random_quat(rng) if o.shape in ("sphere", "hull") else _quat_z(rng.uniform(0, 6.28))


def _loose(rng: np.random.Generator, o: ObjectSpec, spawn: str, spot: tuple[float, float], half: tuple[float, float]
           ) -> None:
    """Start object `o` at a free spot: thrown in from the edge, dropped from a height, or resting."""
    if spawn == "throw":
        edge = rng.uniform(0, 2 * math.pi)
        start = np.array([math.cos(edge) * half[0] * 0.8, math.sin(edge) * half[1] * 0.8])
        o.position = np.array([start[0], start[1], o.size + rng.uniform(0.15, 0.35)])
        direction = -start / (np.linalg.norm(start) + 1e-9)
        o.velocity = np.array([*(direction * rng.uniform(0.6, 1.6)), rng.uniform(0.5, 1.5)])
        o.orientation = _random_quat(rng)
    else:
        height = rng.uniform(0.05, 0.45) if spawn in ("drop", "ramp") else 0.0
        o.position = np.array([spot[0], spot[1], o.half_height + 0.0005 + height])
        o.orientation = _random_quat(rng) if height > 0.1 else _quat_z(rng.uniform(0, 2 * math.pi))


def _camera_and_light(rng: np.random.Generator, kind: str) -> tuple[dict[str, float], dict[str, Any]]:
    camera = {"azimuth": float(rng.uniform(0, 360)), "elevation": float(rng.uniform(25, 60)),
              "distance": float(rng.uniform(0.9, 1.4) if kind == "table" else rng.uniform(1.3, 2.2)),
              "target_x": 0.0, "target_y": 0.0, "target_z": 0.05}
    el, az = math.radians(rng.uniform(35, 80)), rng.uniform(0, 2 * math.pi)
    light = {"direction": (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)),
             "strength": float(rng.uniform(0.6, 0.85)), "ambient": float(rng.uniform(0.28, 0.42))}
    return camera, light


def sample_scene(rng: np.random.Generator, num_objects: int, spawn: str, kind: str,
                 object_size: tuple[float, float]) -> SceneSpec:
    """Draw a scene. Raises ValueError (naming the setting) if the requested scene cannot be built."""
    half = _check_request(num_objects, spawn, kind, object_size)
    lo, hi = object_size
    objects: list[ObjectSpec] = []
    placed: list[tuple[float, float, float]] = []
    ramp = None
    if spawn == "tower":
        _tower(rng, num_objects, lo, hi, objects, placed)
    if spawn == "ramp":
        angle = rng.uniform(18.0, 30.0)
        ramp = {"x": -half[0] * 0.45, "y": rng.uniform(-0.1, 0.1), "angle": angle, "length": 0.5, "width": 0.3}
        placed.append((ramp["x"], ramp["y"], 0.3))
    for i in range(len(objects), num_objects):
        shape = str(rng.choice(SHAPES))
        o = _make_object(rng, i + 1, shape, rng.uniform(lo, hi))
        if ramp is not None and i < len(objects) + 3:
            _on_ramp(rng, o, i, ramp)
            objects.append(o)
            continue
        spot = _free_spot(rng, placed, half, 1.3 * o.size)
        if spot is None:
            raise ValueError(f"could not place {num_objects} objects without overlaps on the "
                             f"{'table' if kind == 'table' else 'floor'}; use fewer or smaller objects")
        placed.append((spot[0], spot[1], 1.3 * o.size))
        _loose(rng, o, spawn, spot, half)
        objects.append(o)
    camera, light = _camera_and_light(rng, kind)
    spot = _free_spot(rng, placed, half, 0.07) or (0.0, -half[1] + 0.1)
    return SceneSpec(kind, spawn, objects, camera, light, ramp, np.array([spot[0], spot[1], 0.04]))
