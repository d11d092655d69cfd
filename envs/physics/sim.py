"""The pybullet side of a physics scene: building bodies from a SceneSpec, stepping at a fixed rate, contacts.

One DIRECT-mode client per env; bodies are rebuilt on every reset (after `resetSimulation`), so a scene depends
only on its spec, and stepping is deterministic. Static scenery gets fixed segmentation ids (SCENERY_IDS);
objects use their own ids 1..N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as pb
from pybullet_utils.bullet_client import BulletClient

from envs.physics.scene import (
    COLOURS,
    FLOOR_EXTENT,
    MATERIALS,
    TABLE,
    TABLE_HEIGHT,
    TABLE_THICKNESS,
    ObjectSpec,
    SceneSpec,
)
from renderers.meshes import convex_hull

SCENERY_IDS = {"floor": 1000, "table": 1001, "ramp": 1002, "wall": 1003, "pusher": 1004, "goal": 1005}
PUSHER_RADIUS, PUSHER_HEIGHT, PUSHER_MASS = 0.05, 0.08, 4.0


@dataclass
class Body:
    """A pybullet body and what it is."""

    uid: int
    seg: int  # segmentation id: object id, or a SCENERY_IDS value
    name: str
    shape: str  # renderer mesh kind
    dims: dict[str, float]
    colour: tuple[float, float, float]
    specular: float = 0.0
    checker: float = 0.0
    points: np.ndarray | None = None
    static_pose: tuple[np.ndarray, np.ndarray] | None = None  # fixed bodies: (position, quaternion)


class PhysicsSim:
    """pybullet world for one env. `hz` internal steps per second."""

    def __init__(self, hz: int = 240, tiny_visuals: bool = False) -> None:
        self.client = BulletClient(connection_mode=pb.DIRECT)
        self.hz = hz
        self.sample_dt = 1.0 / hz
        self.tiny_visuals = tiny_visuals  # also create visual shapes (needed only by pybullet's TinyRenderer)
        self.bodies: list[Body] = []
        self.by_uid: dict[int, Body] = {}
        self.objects: list[Body] = []
        self.pusher: Body | None = None

    # -- building -------------------------------------------------------------------------------------------
    def _shape(self, kind: str, dims: dict[str, float], points: np.ndarray | None) -> tuple[int, dict]:
        c = self.client
        if kind == "box":
            args = {"shapeType": pb.GEOM_BOX, "halfExtents": [dims["hx"], dims["hy"], dims["hz"]]}
        elif kind == "sphere":
            args = {"shapeType": pb.GEOM_SPHERE, "radius": dims["r"]}
        elif kind == "cylinder":
            args = {"shapeType": pb.GEOM_CYLINDER, "radius": dims["r"], "height": dims["h"]}
        elif kind == "capsule":
            args = {"shapeType": pb.GEOM_CAPSULE, "radius": dims["r"], "height": dims["h"]}
        else:  # cone and hull: convex meshes from their vertices
            args = {"shapeType": pb.GEOM_MESH, "vertices": np.asarray(points).tolist()}
        col = c.createCollisionShape(**args)
        return col, args

    def _add(self, body: Body, mass: float, pos, quat, friction: float, restitution: float,
             velocity=None) -> int:
        c = self.client
        col, args = self._shape(body.shape, body.dims, body.points)
        vis = -1
        if self.tiny_visuals:
            vargs = dict(args)
            if vargs["shapeType"] == pb.GEOM_CYLINDER or vargs["shapeType"] == pb.GEOM_CAPSULE:
                vargs["length"] = vargs.pop("height")
            if vargs["shapeType"] == pb.GEOM_MESH:  # visual meshes need explicit triangles
                verts, _, tris = convex_hull(body.points)
                vargs["vertices"], vargs["indices"] = verts.tolist(), tris.reshape(-1).tolist()
            vis = c.createVisualShape(rgbaColor=[*body.colour, 1.0], **vargs)
        uid = c.createMultiBody(baseMass=mass, baseCollisionShapeIndex=col, baseVisualShapeIndex=vis,
                                basePosition=list(pos), baseOrientation=list(quat), useMaximalCoordinates=True)
        c.changeDynamics(uid, -1, lateralFriction=friction, restitution=restitution, rollingFriction=0.0005,
                         spinningFriction=0.001, linearDamping=0.02, angularDamping=0.02)
        if velocity is not None:
            c.resetBaseVelocity(uid, linearVelocity=list(velocity))
        body.uid = uid
        if mass == 0:
            body.static_pose = (np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64))
        self.bodies.append(body)
        self.by_uid[uid] = body
        return uid

    def build(self, spec: SceneSpec) -> None:
        c = self.client
        c.resetSimulation()
        c.setGravity(0, 0, -9.81)
        # 10 solver iterations is Bullet's own default; 20 cost 1.6x the step time (measured) for no visible change.
        c.setPhysicsEngineParameter(fixedTimeStep=1.0 / self.hz, numSolverIterations=10,
                                    deterministicOverlappingPairs=1)
        self.bodies, self.by_uid, self.objects = [], {}, []
        ident = [0.0, 0.0, 0.0, 1.0]
        if spec.kind == "table":
            floor_z = -TABLE_HEIGHT
            top = Body(-1, SCENERY_IDS["table"], "table", "box",
                       {"hx": TABLE[0] / 2, "hy": TABLE[1] / 2, "hz": TABLE_THICKNESS / 2}, (0.55, 0.38, 0.22),
                       specular=0.15)
            self._add(top, 0.0, [0, 0, -TABLE_THICKNESS / 2], ident, 0.6, 0.3)
            leg = {"hx": 0.03, "hy": 0.03, "hz": (TABLE_HEIGHT - TABLE_THICKNESS) / 2}
            for sx in (-1, 1):
                for sy in (-1, 1):
                    b = Body(-1, SCENERY_IDS["table"], "table", "box", leg, (0.45, 0.30, 0.17))
                    self._add(b, 0.0, [sx * (TABLE[0] / 2 - 0.05), sy * (TABLE[1] / 2 - 0.05),
                                       -TABLE_HEIGHT / 2 - TABLE_THICKNESS / 2], ident, 0.6, 0.3)
        else:
            floor_z = 0.0
        floor = Body(-1, SCENERY_IDS["floor"], "floor", "box", {"hx": FLOOR_EXTENT, "hy": FLOOR_EXTENT, "hz": 0.05},
                     (0.78, 0.78, 0.76), checker=0.25)
        self._add(floor, 0.0, [0, 0, floor_z - 0.05], ident, 0.7, 0.3)
        if spec.kind == "room":
            for i, (x, y, hx, hy) in enumerate(((0, 1.5, 1.6, 0.05), (-1.5, 0, 0.05, 1.6), (1.5, 0, 0.05, 1.6))):
                wall = Body(-1, SCENERY_IDS["wall"], "wall", "box", {"hx": hx, "hy": hy, "hz": 0.5},
                            (0.86, 0.84, 0.80) if i else (0.80, 0.84, 0.88))
                self._add(wall, 0.0, [x, y, 0.5], ident, 0.6, 0.3)
        if spec.ramp is not None:
            r = spec.ramp
            a = math.radians(r["angle"])
            ramp = Body(-1, SCENERY_IDS["ramp"], "ramp", "box",
                        {"hx": r["length"] / 2, "hy": r["width"] / 2, "hz": 0.01}, (0.35, 0.55, 0.75), specular=0.2)
            self._add(ramp, 0.0, [r["x"], r["y"], r["length"] / 2 * math.sin(a) + 0.01],
                      [0.0, math.sin(a / 2), 0.0, math.cos(a / 2)], 0.45, 0.2)
        for o in spec.objects:
            self._add_object(o)
        pusher = Body(-1, SCENERY_IDS["pusher"], "pusher", "cylinder", {"r": PUSHER_RADIUS, "h": PUSHER_HEIGHT},
                      (0.15, 0.15, 0.17), specular=0.6)
        self._add(pusher, PUSHER_MASS, spec.pusher_start, ident, 0.02, 0.1)
        c.changeDynamics(pusher.uid, -1, activationState=pb.ACTIVATION_STATE_DISABLE_SLEEPING)
        self.pusher = pusher

    def _add_object(self, o: ObjectSpec) -> None:
        m = MATERIALS[o.material]
        shape = {"cube": "box"}.get(o.shape, o.shape)
        dims = o.dims
        body = Body(-1, o.id, o.name, shape, dims, COLOURS[o.colour], specular=m.specular, points=o.points)
        self._add(body, o.mass, o.position, o.orientation, m.friction, m.restitution, o.velocity)
        self.objects.append(body)

    # -- stepping -------------------------------------------------------------------------------------------
    def drive_pusher(self, velocity_xy: np.ndarray | None, force_xy: np.ndarray | None) -> None:
        """Command the pusher for the next frame: a planar velocity (m/s) or force (N, applied for the next
        internal step; call every step for a sustained force). The pusher glides (low friction) and stays upright."""
        c, uid = self.client, self.pusher.uid
        pos, _ = c.getBasePositionAndOrientation(uid)
        lin, _ = c.getBaseVelocity(uid)
        c.resetBasePositionAndOrientation(uid, pos, [0, 0, 0, 1])  # upright (this also clears its velocity)
        if velocity_xy is not None:
            c.resetBaseVelocity(uid, linearVelocity=[float(velocity_xy[0]), float(velocity_xy[1]), min(lin[2], 0.0)],
                                angularVelocity=[0, 0, 0])
        else:
            c.resetBaseVelocity(uid, linearVelocity=lin, angularVelocity=[0, 0, 0])
            c.applyExternalForce(uid, -1, [float(force_xy[0]), float(force_xy[1]), 0.0], pos, pb.WORLD_FRAME)

    def step(self, contacts: bool = True) -> list[tuple[int, int, float, tuple[float, float, float]]]:
        """One internal step; with `contacts`, returns them as (seg a, seg b, normal impulse N*s, position), the
        impulse being the normal force times the time since the previous sample (`self.sample_dt`)."""
        cid = self.client._client  # raw pybullet calls: the BulletClient wrapper costs ~1 us per call here
        pb.stepSimulation(physicsClientId=cid)
        if not contacts:
            return []
        dt = self.sample_dt
        out = []
        for cp in pb.getContactPoints(physicsClientId=cid):
            a, b = self.by_uid.get(cp[1]), self.by_uid.get(cp[2])
            if a is None or b is None:
                continue
            out.append((a.seg, b.seg, cp[9] * dt, cp[5]))
        return out

    def object_states(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions (N,3), quaternions (N,4, xyzw), linear (N,3) and angular (N,3) velocities of the objects."""
        c = self.client
        n = len(self.objects)
        pos, quat, lin, ang = np.zeros((n, 3)), np.zeros((n, 4)), np.zeros((n, 3)), np.zeros((n, 3))
        for i, b in enumerate(self.objects):
            p, q = c.getBasePositionAndOrientation(b.uid)
            v, w = c.getBaseVelocity(b.uid)
            pos[i], quat[i], lin[i], ang[i] = p, q, v, w
        return pos, quat, lin, ang

    def pose(self, body: Body) -> tuple[np.ndarray, np.ndarray]:
        if body.static_pose is not None:
            return body.static_pose
        p, q = self.client.getBasePositionAndOrientation(body.uid)
        return np.asarray(p), np.asarray(q)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions (x, y, z, w). # (..., 4) -> (..., 3, 3)"""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
