"""Pinhole camera: pose, projection and the intrinsics/extrinsics reported as ground truth.

World frame: +Y up, +X east, +Z south (Minecraft's axes). Angles follow Minecraft/MineRL: yaw 0 faces +Z
and grows turning right; pitch is positive looking down, clamped to [-90, 90].
Ground truth uses the OpenCV camera convention (x right, y down, z forward), the one most vision code expects.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3-vector cross product (np.cross costs ~10 us per call in its generic form)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@functools.lru_cache(maxsize=64)
def _projection(fov_y: float, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL perspective projection (cached: it only changes with the lens). # (4, 4)"""
    t = 1.0 / math.tan(math.radians(fov_y) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = t * height / width, t
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    m.flags.writeable = False
    return m


def look_direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Unit forward vector for a yaw/pitch in degrees. # (3,)"""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    cp = math.cos(pitch)
    return np.array([-math.sin(yaw) * cp, -math.sin(pitch), math.cos(yaw) * cp])


@dataclass
class Camera:
    """A perspective camera.

    Attributes:
        position: eye position in world units (blocks or metres). # (3,)
        yaw: heading in degrees (0 faces +Z, positive turns right).
        pitch: degrees, positive looks down.
        fov_y: vertical field of view in degrees.
        width, height: image size in pixels (any aspect ratio).
        near, far: clip distances.
    """

    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0
    pitch: float = 0.0
    fov_y: float = 70.0
    width: int = 64
    height: int = 64
    near: float = 0.05
    far: float = 256.0
    frame: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # explicit (right, up, forward); see look_at

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera width and height must be positive, got {self.width}x{self.height}")
        if not 1.0 <= self.fov_y <= 170.0:
            raise ValueError(f"camera fov_y must be in [1, 170] degrees, got {self.fov_y}")
        self.position = np.asarray(self.position, dtype=np.float64)

    # -- frame vectors -------------------------------------------------------------------------------------
    @classmethod
    def look_at(cls, eye, target, up=(0.0, 0.0, 1.0), **kwargs) -> Camera:
        """A camera at `eye` looking at `target`, with `up` as the world's up axis (Z-up worlds such as pybullet's)."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        f = target - eye
        if np.linalg.norm(f) < 1e-9:
            raise ValueError("camera eye and target coincide")
        f = f / np.linalg.norm(f)
        r = _cross(f, up)
        if np.linalg.norm(r) < 1e-9:  # looking along `up`: any perpendicular will do
            r = _cross(f, np.array([1.0, 0.0, 0.0] if abs(f[0]) < 0.9 else [0.0, 1.0, 0.0]))
        r = r / np.linalg.norm(r)
        return cls(position=eye, frame=(r, _cross(r, f), f), **kwargs)

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) unit vectors in world space."""
        if self.frame is not None:
            return self.frame
        key = (self.yaw, self.pitch)
        cached = self.__dict__.get("_basis")
        if cached is not None and cached[0] == key:
            return cached[1]
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
        f = np.array([-sy * cp, -sp, cy * cp])
        r = np.array([-cy, 0.0, -sy])  # forward x world-up, normalised; defined by the heading even at +-90 pitch
        u = _cross(r, f)
        self.__dict__["_basis"] = (key, (r, u, f))
        return r, u, f

    # -- GL matrices (column vectors, row-major numpy; transpose when uploading) ----------------------------
    def view_matrix(self) -> np.ndarray:
        """World -> GL eye space (camera looks down -z). # (4, 4)"""
        r, u, f = self.basis()
        m = np.eye(4)
        m[0, :3], m[1, :3], m[2, :3] = r, u, -f
        m[:3, 3] = -m[:3, :3] @ self.position
        return m

    def projection_matrix(self) -> np.ndarray:
        """OpenGL perspective projection. # (4, 4)"""
        return _projection(self.fov_y, self.width, self.height, self.near, self.far).copy()

    def view_projection(self) -> np.ndarray:
        return _projection(self.fov_y, self.width, self.height, self.near, self.far) @ self.view_matrix()

    # -- ground truth (OpenCV convention) --------------------------------------------------------------------
    def intrinsics(self) -> np.ndarray:
        """Pixel intrinsics K (fx, fy, cx, cy), square pixels, principal point at the image centre. # (3, 3)"""
        fy = 0.5 * self.height / math.tan(math.radians(self.fov_y) / 2)
        return np.array([[fy, 0.0, self.width / 2], [0.0, fy, self.height / 2], [0.0, 0.0, 1.0]])

    def extrinsics(self) -> np.ndarray:
        """World -> camera transform, OpenCV axes (x right, y down, z forward). # (4, 4)"""
        r, u, f = self.basis()
        m = np.eye(4)
        m[0, :3], m[1, :3], m[2, :3] = r, -u, f
        m[:3, 3] = -m[:3, :3] @ self.position
        return m

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points to pixel coordinates (u right, v down) and camera depth. # (N,3) -> (N,2), (N,)"""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        ext, k = self.extrinsics(), self.intrinsics()
        cam = pts @ ext[:3, :3].T + ext[:3, 3]
        z = cam[:, 2]
        uv = (cam[:, :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)[:, None]) @ k[:2, :2].T + k[:2, 2]
        return uv, z

    def linearize_depth(self, depth_buffer: np.ndarray) -> np.ndarray:
        """Convert a [0, 1] GL depth buffer to z-depth along the optical axis; inf where nothing was drawn."""
        n, f = self.near, self.far
        z_ndc = depth_buffer.astype(np.float64) * 2.0 - 1.0
        z = (2.0 * n * f) / (f + n - z_ndc * (f - n))
        return np.where(depth_buffer >= 1.0, np.inf, z).astype(np.float32)
