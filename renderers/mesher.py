"""Voxel meshing: hidden-face culling plus greedy merging of coplanar faces, vectorised in numpy.

A quad is one row of a float32 array `QUAD_FIELDS`: its minimum voxel corner, the direction it faces,
its block id, and its extent along each axis (1 along the normal axis). The renderer expands a quad into
4 vertices in the vertex shader, so a mesh costs 32 bytes per quad however large the quad is.

Greedy merging runs twice (first along one tangent axis, then the other), which recovers most of what an
optimal greedy mesher finds on terrain; merging never crosses a chunk boundary so the renderer can cull
and update chunks independently.
"""

from __future__ import annotations

import numpy as np

CHUNK = 16
QUAD_FIELDS = ("x", "y", "z", "dir", "block", "ex", "ey", "ez")
# Directions: 0 +x, 1 -x, 2 +y, 3 -y, 4 +z, 5 -z.
DIRECTIONS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.int64)
# For each normal axis, the two tangent axes merged in order (first pass, second pass).
_MERGE_AXES = {0: (2, 1), 1: (0, 2), 2: (0, 1)}


def visible_faces(
    padded: np.ndarray, origin: tuple[int, int, int], opaque: np.ndarray, fluid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Faces of a block region that touch a non-occluding neighbour.

    Args:
        padded: block ids with a one-voxel border of neighbours on every side. # (X+2, Y+2, Z+2) uint8
        origin: world coordinate of the first interior voxel.
        opaque: lookup table, True for block ids that hide the faces behind them. # (256,) bool
        fluid: lookup table, True for translucent fluid blocks (drawn in a second, blended pass). # (256,) bool

    Returns:
        (solid_quads, fluid_quads), each (N, 8) float32 unit quads in `QUAD_FIELDS` layout.
    """
    # Only layers that can hold a face matter: skip interior layers that are all empty, or all opaque with
    # all-opaque layers above and below (buried stone). On terrain this leaves ~1/4 of the height.
    layer_empty = ~padded.any(axis=(0, 2))
    layer_solid = opaque[padded].all(axis=(0, 2))
    buried = layer_solid[:-2] & layer_solid[1:-1] & layer_solid[2:]
    busy = np.flatnonzero(~(layer_empty[1:-1] | buried))
    empty = np.zeros((0, 8), dtype=np.float32)
    if len(busy) == 0:
        return empty, empty
    y0, y1 = int(busy[0]), int(busy[-1]) + 1  # interior layer range to mesh
    padded = padded[:, y0 : y1 + 2, :]
    origin = (origin[0], origin[1] + y0, origin[2])
    inner = padded[1:-1, 1:-1, 1:-1]
    shape = inner.shape
    solid_out, fluid_out = [], []
    is_fluid = fluid[inner]
    nonempty = inner != 0
    for d, (dx, dy, dz) in enumerate(DIRECTIONS):
        nb = padded[
            1 + dx : 1 + dx + shape[0],
            1 + dy : 1 + dy + shape[1],
            1 + dz : 1 + dz + shape[2],
        ]
        nb_opaque = opaque[nb]
        solid_mask = nonempty & ~is_fluid & ~nb_opaque
        fluid_mask = is_fluid & ~nb_opaque & ~fluid[nb]
        for mask, out in ((solid_mask, solid_out), (fluid_mask, fluid_out)):
            idx = np.nonzero(mask)
            if idx[0].size == 0:
                continue
            q = np.empty((idx[0].size, 8), dtype=np.float32)
            q[:, 0] = idx[0] + origin[0]
            q[:, 1] = idx[1] + origin[1]
            q[:, 2] = idx[2] + origin[2]
            q[:, 3] = d
            q[:, 4] = inner[idx]
            q[:, 5:8] = 1.0
            out.append(q)
    return (
        np.concatenate(solid_out) if solid_out else empty,
        np.concatenate(fluid_out) if fluid_out else empty,
    )


def _merge_along(quads: np.ndarray, axis: int) -> np.ndarray:
    """Merge quads that are adjacent along `axis` and agree on everything else. # (N,8) -> (M,8)"""
    if len(quads) < 2:
        return quads
    q = quads.astype(np.int64)
    chunk_x, chunk_z = q[:, 0] // CHUNK, q[:, 2] // CHUNK
    key_cols = [c for c in range(8) if c not in (axis, 5 + axis)]
    keys = [q[:, axis]] + [q[:, c] for c in reversed(key_cols)] + [chunk_z, chunk_x]
    order = np.lexsort(keys)
    q, chunk_x, chunk_z = q[order], chunk_x[order], chunk_z[order]
    same_key = np.all(q[1:, key_cols] == q[:-1, key_cols], axis=1)
    same_key &= (chunk_x[1:] == chunk_x[:-1]) & (chunk_z[1:] == chunk_z[:-1])
    touching = q[1:, axis] == q[:-1, axis] + q[:-1, 5 + axis]
    start = np.ones(len(q), dtype=bool)
    start[1:] = ~(same_key & touching)
    starts = np.flatnonzero(start)
    merged = q[starts].copy()
    merged[:, 5 + axis] = np.add.reduceat(q[:, 5 + axis], starts)
    return merged.astype(np.float32)


def greedy_merge(quads: np.ndarray) -> np.ndarray:
    """Merge unit quads into larger rectangles, direction by direction. # (N,8) -> (M,8), M <= N"""
    out = []
    for normal_axis, (a1, a2) in _MERGE_AXES.items():
        sel = quads[(quads[:, 3] // 2) == normal_axis]
        if len(sel):
            out.append(_merge_along(_merge_along(sel, a1), a2))
    return np.concatenate(out) if out else quads[:0]


def mesh_region(
    padded: np.ndarray,
    origin: tuple[int, int, int],
    opaque: np.ndarray,
    fluid: np.ndarray,
    merge: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Visible faces of a region, greedily merged (see `visible_faces` for the arguments)."""
    solid, water = visible_faces(padded, origin, opaque, fluid)
    if merge:
        solid, water = greedy_merge(solid), greedy_merge(water)
    return solid, water


_AX_U = np.array([1, 2, 2, 0, 0, 1])
_AX_V = np.array([2, 1, 0, 2, 1, 0])
_CORNERS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
VERTEX_FIELDS = ("x", "y", "z", "u", "v", "code")  # code = dir * 256 + block
QUAD_INDICES = np.array([0, 1, 2, 2, 1, 3], dtype=np.uint32)  # two counter-clockwise triangles per quad


def quad_vertices(quads: np.ndarray, drop_top: float = 0.0) -> np.ndarray:
    """Expand quads into 4 vertices each: position, texture coordinate in blocks, and a face code.

    Corners are ordered so both triangles of `QUAD_INDICES` wind counter-clockwise seen from outside.
    `drop_top` lowers upward faces (fluid surfaces sit a little below the block top). # (N,8) -> (4N, 6)
    """
    n = len(quads)
    d = quads[:, 3].astype(np.int64)
    eye = np.eye(3, dtype=np.float32)
    ext = quads[:, 5:8]
    span_u = eye[_AX_U[d]] * ext[np.arange(n), _AX_U[d]][:, None]  # (N, 3)
    span_v = eye[_AX_V[d]] * ext[np.arange(n), _AX_V[d]][:, None]
    base = quads[:, 0:3] + eye[d // 2] * (d % 2 == 0)[:, None]
    base[:, 1] -= drop_top * (d == 2)
    pos = base[:, None, :] + _CORNERS[None, :, 0:1] * span_u[:, None, :] + _CORNERS[None, :, 1:2] * span_v[:, None, :]
    out = np.empty((n, 4, 6), dtype=np.float32)
    out[..., 0:3] = pos
    normal_axis = (d // 2)[:, None]
    # Texture coordinates in world units: x/z on top and bottom faces, horizontal/-y on sides (row 0 at the top).
    out[..., 3] = np.where(normal_axis == 1, pos[..., 0], np.where(normal_axis == 0, pos[..., 2], pos[..., 0]))
    out[..., 4] = np.where(normal_axis == 1, pos[..., 2], -pos[..., 1])
    out[..., 5] = (d * 256 + quads[:, 4].astype(np.int64))[:, None]
    return out.reshape(n * 4, 6)


def split_by_chunk(quads: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Group quads by the (cx, cz) chunk that owns them, each group sorted by direction."""
    if len(quads) == 0:
        return {}
    cx = np.floor_divide(quads[:, 0], CHUNK).astype(np.int64)
    cz = np.floor_divide(quads[:, 2], CHUNK).astype(np.int64)
    order = np.lexsort((quads[:, 3], cz, cx))
    quads, cx, cz = quads[order], cx[order], cz[order]
    change = np.flatnonzero((cx[1:] != cx[:-1]) | (cz[1:] != cz[:-1])) + 1
    bounds = np.concatenate([[0], change, [len(quads)]])
    return {(int(cx[a]), int(cz[a])): quads[a:b] for a, b in zip(bounds[:-1], bounds[1:])}
