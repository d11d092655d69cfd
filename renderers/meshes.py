"""Triangle meshes of primitive shapes, in the same local frames as pybullet's shapes (long axis along Z).

Each function returns (vertices (N,3) float32, normals (N,3) float32, triangles (M,3) uint32), counter-clockwise
seen from outside. Flat faces get their own vertices (sharp edges); curved sides share smooth normals.
"""

from __future__ import annotations

import itertools

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray, np.ndarray]


def _flat(tris: np.ndarray) -> Mesh:
    """A flat-shaded mesh from triangle corner positions. # (M,3,3) -> Mesh"""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    verts = tris.reshape(-1, 3).astype(np.float32)
    normals = np.repeat(n, 3, axis=0).astype(np.float32)
    return verts, normals, np.arange(len(verts), dtype=np.uint32).reshape(-1, 3)


def box(half: tuple[float, float, float]) -> Mesh:
    """Axis-aligned box with half extents (hx, hy, hz), centred at the origin."""
    h = np.asarray(half, dtype=np.float64)
    tris = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            u, v = (axis + 1) % 3, (axis + 2) % 3
            c = np.zeros((4, 3))
            c[:, axis] = sign
            c[:, u] = [-1, 1, 1, -1]
            c[:, v] = [-1, -1, 1, 1]
            if sign < 0:
                c = c[::-1]
            c *= h
            tris += [c[[0, 1, 2]], c[[0, 2, 3]]]
    return _flat(np.array(tris))


def convex_hull(points: np.ndarray) -> Mesh:
    """Flat-shaded convex hull of a few points in general position (brute force; fine for <= 20 points)."""
    p = np.asarray(points, dtype=np.float64)
    centre = p.mean(axis=0)
    tris = []
    for i, j, k in itertools.combinations(range(len(p)), 3):
        n = np.cross(p[j] - p[i], p[k] - p[i])
        if np.linalg.norm(n) < 1e-12:
            continue
        side = (p - p[i]) @ n
        if np.all(side <= 1e-9) or np.all(side >= -1e-9):
            tri = p[[i, j, k]]
            if np.dot(n, p[i] - centre) < 0:  # orient outwards
                tri = tri[[0, 2, 1]]
            tris.append(tri)
    if len(tris) < 4:
        raise ValueError("convex_hull needs at least 4 points that are not coplanar")
    return _flat(np.array(tris))


def _revolve(profile: list[tuple[float, float, float, float]], segments: int) -> Mesh:
    """Surface of revolution about Z from a profile of (radius, z, normal_r, normal_z) rings, smooth-shaded."""
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ca, sa = np.cos(a), np.sin(a)
    verts, normals = [], []
    for r, z, nr, nz in profile:
        verts.append(np.stack([r * ca, r * sa, np.full(segments, z)], axis=1))
        nn = np.stack([nr * ca, nr * sa, np.full(segments, nz)], axis=1)
        normals.append(nn / (np.linalg.norm(nn, axis=1, keepdims=True) + 1e-12))
    verts, normals = np.concatenate(verts), np.concatenate(normals)
    tris = []
    for ring in range(len(profile) - 1):
        for s in range(segments):
            a0, a1 = ring * segments + s, ring * segments + (s + 1) % segments
            b0, b1 = a0 + segments, a1 + segments
            tris += [[a0, a1, b1], [a0, b1, b0]]
    return verts.astype(np.float32), normals.astype(np.float32), np.array(tris, dtype=np.uint32)


def _disc(radius: float, z: float, up: bool, segments: int) -> Mesh:
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    rim = np.stack([radius * np.cos(a), radius * np.sin(a), np.full(segments, z)], axis=1)
    centre = np.array([0.0, 0.0, z])
    tris = [[centre, rim[i], rim[(i + 1) % segments]] if up else [centre, rim[(i + 1) % segments], rim[i]]
            for i in range(segments)]
    return _flat(np.array(tris))


def merge(*meshes: Mesh) -> Mesh:
    vs, ns, ts, off = [], [], [], 0
    for v, n, t in meshes:
        vs.append(v)
        ns.append(n)
        ts.append(t + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(ns), np.concatenate(ts).astype(np.uint32)


def sphere(radius: float, segments: int = 16, rings: int = 8) -> Mesh:
    th = np.linspace(np.pi, 0, rings + 1)[1:-1]  # exclude the poles; caps close the ends
    profile = [(radius * np.sin(t), radius * np.cos(t), np.sin(t), np.cos(t)) for t in th]
    side = _revolve(profile, segments)
    bottom = _cap(radius * np.sin(th[0]), radius * np.cos(th[0]), -radius, segments, up=False)
    top = _cap(radius * np.sin(th[-1]), radius * np.cos(th[-1]), radius, segments, up=True)
    return merge(side, bottom, top)


def _cap(ring_r: float, ring_z: float, pole_z: float, segments: int, up: bool) -> Mesh:
    """A fan from a ring to a pole point, smooth normals pointing away from the centre."""
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([ring_r * np.cos(a), ring_r * np.sin(a), np.full(segments, ring_z)], axis=1)
    verts = np.concatenate([ring, [[0.0, 0.0, pole_z]]])
    normals = verts / (np.linalg.norm(verts, axis=1, keepdims=True) + 1e-12)
    pole = segments
    tris = [[i, (i + 1) % segments, pole] if up else [(i + 1) % segments, i, pole] for i in range(segments)]
    return verts.astype(np.float32), normals.astype(np.float32), np.array(tris, dtype=np.uint32)


def cylinder(radius: float, height: float, segments: int = 16) -> Mesh:
    h = height / 2
    side = _revolve([(radius, -h, 1.0, 0.0), (radius, h, 1.0, 0.0)], segments)
    return merge(side, _disc(radius, h, True, segments), _disc(radius, -h, False, segments))


def capsule(radius: float, height: float, segments: int = 16, rings: int = 4) -> Mesh:
    """Cylinder of `height` along Z capped by hemispheres (pybullet's capsule)."""
    h = height / 2
    th = np.linspace(0, np.pi / 2, rings + 1)[:-1]
    lower = [(radius * np.cos(t), -h - radius * np.sin(t), np.cos(t), -np.sin(t)) for t in th[::-1]]
    upper = [(radius * np.cos(t), h + radius * np.sin(t), np.cos(t), np.sin(t)) for t in th]
    side = _revolve(lower + upper, segments)
    ring_lo, ring_hi = lower[0], upper[-1]
    bottom = _cap_offset(ring_lo[0], ring_lo[1], -h - radius, -h, segments, up=False)
    top = _cap_offset(ring_hi[0], ring_hi[1], h + radius, h, segments, up=True)
    return merge(side, bottom, top)


def _cap_offset(ring_r: float, ring_z: float, pole_z: float, centre_z: float, segments: int, up: bool) -> Mesh:
    v, n, t = _cap(ring_r, ring_z - centre_z, pole_z - centre_z, segments, up)
    v = v.copy()
    v[:, 2] += centre_z
    return v, n, t


def cone_points(radius: float, height: float, segments: int = 16) -> np.ndarray:
    """Vertices of a cone along Z with its centre of mass at the origin (base at -h/4, apex at 3h/4)."""
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    base = np.stack([radius * np.cos(a), radius * np.sin(a), np.full(segments, -height / 4)], axis=1)
    return np.concatenate([base, [[0.0, 0.0, 0.75 * height]]])


def cone(radius: float, height: float, segments: int = 16) -> Mesh:
    pts = cone_points(radius, height, segments)
    apex, base = pts[-1], pts[:-1]
    slope = radius / height
    profile_side = []
    for i in range(segments):  # smooth side: one triangle per segment with normals from the slant
        j = (i + 1) % segments
        profile_side.append([base[i], base[j], apex])
    v, _, t = _flat(np.array(profile_side))
    radial = v[:, :2] / (np.linalg.norm(v[:, :2], axis=1, keepdims=True) + 1e-9)
    n = np.concatenate([radial, np.full((len(v), 1), slope)], axis=1)
    n[2::3, :2] = (v[0::3, :2] + v[1::3, :2]) / 2 / (np.linalg.norm((v[0::3, :2] + v[1::3, :2]) / 2, axis=1,
                                                                     keepdims=True) + 1e-9)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return merge((v, n.astype(np.float32), t), _disc(radius, -height / 4, False, segments))
