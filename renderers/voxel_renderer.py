"""Headless renderer for voxel worlds: greedy-meshed chunks, box entities, sky, fog and translucent fluids.

Chunks are uploaded as quad instances into one GPU buffer; every frame the chunk/direction groups that can be
seen (inside the view frustum and facing the camera) are drawn with a single multi-draw-indirect call. A colour
image is always produced; a per-pixel segmentation (block id, or `ENTITY_SEG_OFFSET + entity id`; 0 is sky)
is rendered in the same pass, and depth comes from the depth buffer; both are read back only on request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import moderngl
import numpy as np

from renderers import shaders
from renderers.camera import Camera
from renderers.context import get_context
from renderers.mesher import DIRECTIONS, QUAD_INDICES, quad_vertices
from renderers.sky import SkyState
from renderers.target import RenderOutput, RenderTarget
from renderers.textures import BlockMaterial, build_atlas

ENTITY_SEG_OFFSET = 256  # segmentation value of entity k is ENTITY_SEG_OFFSET + k
BOX_FIELDS = ("cx", "cy", "cz", "sx", "sy", "sz", "yaw", "r", "g", "b", "seg")  # per entity box, float32
_VERTEX_BYTES = 24  # 6 float32 per vertex, 4 vertices per quad (see mesher.quad_vertices)


@dataclass
class _Groups:
    """Draw groups (one per chunk and direction) of one buffer region."""

    base: np.ndarray  # (G,) first quad index
    count: np.ndarray  # (G,)
    dirs: np.ndarray  # (G,)
    lo: np.ndarray  # (G, 3) bounding box of the group's quads
    hi: np.ndarray  # (G, 3)

    @classmethod
    def empty(cls) -> _Groups:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros((0, 3)), np.zeros((0, 3)))


def _groups_of(chunks: Sequence[np.ndarray], start: int) -> _Groups:
    """Group quads (each chunk's array sorted by direction) into per-(chunk, direction) ranges."""
    bases, counts, dirs, los, his = [], [], [], [], []
    offset = start
    for q in chunks:
        if len(q) == 0:
            continue
        d = q[:, 3].astype(np.int64)
        cuts = np.flatnonzero(d[1:] != d[:-1]) + 1
        bounds = np.concatenate([[0], cuts, [len(q)]])
        lo_all = q[:, 0:3]
        hi_all = q[:, 0:3] + q[:, 5:8]
        for a, b in zip(bounds[:-1], bounds[1:]):
            bases.append(offset + a)
            counts.append(b - a)
            dirs.append(d[a])
            los.append(lo_all[a:b].min(axis=0))
            his.append(hi_all[a:b].max(axis=0))
        offset += len(q)
    if not bases:
        return _Groups.empty()
    return _Groups(np.array(bases), np.array(counts), np.array(dirs), np.array(los), np.array(his))


def _frustum_planes(vp: np.ndarray) -> np.ndarray:
    """The six clip planes (a, b, c, d) of a view-projection matrix, pointing inwards. # (6, 4)"""
    return np.stack([vp[3] + vp[0], vp[3] - vp[0], vp[3] + vp[1], vp[3] - vp[1], vp[3] + vp[2], vp[3] - vp[2]])


def _visible(groups: _Groups, vp: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Mask of groups inside the frustum whose faces can face the camera (direction -1: any facing)."""
    if len(groups.base) == 0:
        return np.zeros(0, dtype=bool)
    planes = _frustum_planes(vp)
    # A box is outside when, for some plane, even its corner furthest along the plane normal is behind it:
    # max over corners of n.p = n+.hi + n-.lo (split the normal by sign).
    n_pos, n_neg = np.maximum(planes[:, :3], 0.0), np.minimum(planes[:, :3], 0.0)
    far = groups.hi @ n_pos.T + groups.lo @ n_neg.T + planes[:, 3]  # (G, 6)
    inside = (far >= 0).all(axis=1)
    # A face pointing +axis is seen only from beyond its plane, i.e. eye[axis] > the group's lowest plane.
    dirs = groups.dirs
    axis = np.maximum(dirs, 0) // 2
    rows = np.arange(len(axis))
    e = eye[axis]
    facing = np.where(dirs % 2 == 0, e > groups.lo[rows, axis], e < groups.hi[rows, axis]) | (dirs < 0)
    return inside & facing


class VoxelRenderer:
    """Draws a voxel world from quads produced by `renderers.mesher`.

    Args:
        width, height: image size in pixels (any aspect ratio).
        materials: per block id (index), None for air.
        textured: procedural block textures (False: flat colours).
        device_index: EGL device; see `renderers.context.get_context`.
    """

    def __init__(
        self,
        width: int,
        height: int,
        materials: Sequence[BlockMaterial | None],
        textured: bool = True,
        device_index: int = 0,
    ) -> None:
        self.ctx = ctx = get_context(device_index)
        self._target = RenderTarget(ctx, width, height)
        self.width, self.height = self._target.width, self._target.height
        self._materials = list(materials)
        layers, layer_of = build_atlas(self._materials, textured)
        self._atlas = ctx.texture_array((16, 16, len(layers)), 4, layers.tobytes())
        self._atlas.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._quad_prog = ctx.program(vertex_shader=shaders.QUAD_VS, fragment_shader=shaders.QUAD_FS)
        self._box_prog = ctx.program(vertex_shader=shaders.BOX_VS, fragment_shader=shaders.BOX_FS)
        self._sky_prog = ctx.program(vertex_shader=shaders.SKY_VS, fragment_shader=shaders.SKY_FS)
        self._quad_prog["u_layer_of"].value = layer_of.reshape(-1).tolist()
        emissive = [0] * 256
        for i, m in enumerate(self._materials):
            if m is not None and m.emissive:
                emissive[i] = 1
        self._quad_prog["u_emissive"].value = emissive
        self._sky_vao = ctx.vertex_array(self._sky_prog, [])
        self._quad_buf = ctx.buffer(reserve=_VERTEX_BYTES * 4 * 4096, dynamic=True)
        self._index_buf = ctx.buffer(reserve=4)
        self._quad_capacity = 0
        self._quad_vao = self._make_quad_vao(4096)
        self._box_buf = ctx.buffer(reserve=44 * 64, dynamic=True)
        self._box_vao = self._make_box_vao()
        self._n_boxes = 0
        self._indirect = ctx.buffer(reserve=16 * 256, dynamic=True)
        self._fbo = self._target.fbo
        self._chunks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # quads per chunk
        self._vertices: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # their vertices
        self._dirty = True
        self._solid = self._fluid = self._groups = _Groups.empty()
        self._n_solid_groups = 0
        self.fluid_drop = 0.12

    # -- scene ----------------------------------------------------------------------------------------------
    def _make_quad_vao(self, quads: int) -> moderngl.VertexArray:
        # One shared index pattern (two triangles per quad) covers every quad in the buffer; draws pick
        # ranges of it by first index. Indexed, non-instanced draws keep llvmpipe's vertex batches full.
        if quads > self._quad_capacity:
            self._quad_capacity = quads
            idx = (QUAD_INDICES[None, :] + 4 * np.arange(quads, dtype=np.uint32)[:, None]).astype(np.uint32)
            self._index_buf.orphan(idx.nbytes)
            self._index_buf.write(idx.tobytes())
        return self.ctx.vertex_array(
            self._quad_prog,
            [(self._quad_buf, "3f 2f 1f", "in_pos", "in_tex", "in_code")],
            index_buffer=self._index_buf,
            index_element_size=4,
        )

    def _make_box_vao(self) -> moderngl.VertexArray:
        return self.ctx.vertex_array(
            self._box_prog,
            [(self._box_buf, "3f 3f 1f 3f 1f/i", "in_centre", "in_size", "in_yaw", "in_colour", "in_seg")],
        )

    def set_chunk(self, key: tuple[int, int], solid: np.ndarray, fluid: np.ndarray) -> None:
        """Set (or replace) the quads of one chunk; each array sorted by direction (see mesher.split_by_chunk)."""
        # Expanded to vertices once here, so re-uploading after an edit elsewhere is a plain concatenation.
        self._chunks[key] = (solid, fluid)
        self._vertices[key] = (quad_vertices(solid), quad_vertices(fluid, self.fluid_drop))
        self._dirty = True

    def remove_chunk(self, key: tuple[int, int]) -> None:
        if self._chunks.pop(key, None) is not None:
            del self._vertices[key]
            self._dirty = True

    def clear(self) -> None:
        """Forget every chunk and entity (a new world)."""
        self._chunks.clear()
        self._vertices.clear()
        self._n_boxes = 0
        self._dirty = True

    @property
    def chunk_keys(self) -> set[tuple[int, int]]:
        return set(self._chunks)

    def quad_count(self) -> int:
        return sum(len(s) + len(f) for s, f in self._chunks.values())

    def set_boxes(self, boxes: np.ndarray) -> None:
        """Entity boxes for the next frames, rows in `BOX_FIELDS` layout. # (N, 11) float32"""
        boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, len(BOX_FIELDS))
        if boxes.nbytes > self._box_buf.size:
            self._box_buf.orphan(boxes.nbytes * 2)
        if len(boxes):
            self._box_buf.write(boxes.tobytes())
        self._n_boxes = len(boxes)

    def _upload(self) -> None:
        keys = sorted(self._chunks)
        solids = [self._chunks[k][0] for k in keys]
        fluids = [self._chunks[k][1] for k in keys]
        verts = [self._vertices[k][0] for k in keys] + [self._vertices[k][1] for k in keys]
        data = np.concatenate(verts + [np.zeros((0, 6), np.float32)])
        n_quads = len(data) // 4
        if data.nbytes > self._quad_buf.size or n_quads > self._quad_capacity:
            grow = max(n_quads * 3 // 2, 4096)
            self._quad_buf.orphan(grow * 4 * _VERTEX_BYTES)
            self._quad_vao.release()
            self._quad_vao = self._make_quad_vao(grow)
        if data.nbytes:
            self._quad_buf.write(data.tobytes())
        n_solid = sum(len(s) for s in solids)
        self._solid = _groups_of(solids, 0)
        self._fluid = _groups_of(fluids, n_solid)
        # One table of all groups so visibility is a single vectorised pass per frame; fluid groups get
        # direction -1, which skips back-facing culling (water surfaces are seen from below too).
        s, f = self._solid, self._fluid
        self._groups = _Groups(np.concatenate([s.base, f.base]), np.concatenate([s.count, f.count]),
                               np.concatenate([s.dirs, np.full(len(f.dirs), -1)]),
                               np.concatenate([s.lo, f.lo]), np.concatenate([s.hi, f.hi]))
        self._n_solid_groups = len(s.base)
        self._dirty = False

    def _draw_groups(self, groups: _Groups, mask: np.ndarray) -> None:
        n = int(mask.sum())
        if n == 0:
            return
        # DrawElementsIndirectCommand: index count, instance count, first index, base vertex, base instance.
        cmd = np.zeros((n, 5), dtype=np.uint32)
        cmd[:, 0], cmd[:, 1], cmd[:, 2] = 6 * groups.count[mask], 1, 6 * groups.base[mask]
        if cmd.nbytes > self._indirect.size:
            self._indirect.orphan(cmd.nbytes * 2)
        self._indirect.write(cmd.tobytes())
        self._quad_vao.render_indirect(self._indirect, mode=moderngl.TRIANGLES, count=n)

    # -- drawing --------------------------------------------------------------------------------------------
    def render(
        self,
        camera: Camera,
        sky: SkyState,
        fog_distance: float = 64.0,
        underwater: bool = False,
        depth: bool = False,
        segmentation: bool = False,
    ) -> RenderOutput:
        """Render one frame from `camera` under `sky`.

        Args:
            fog_distance: distance at which fog fully hides the world (0 or less disables fog).
            underwater: tint and thicken fog as seen from inside a fluid.
            depth, segmentation: also read back those images.
        """
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(
                f"camera is {camera.width}x{camera.height} but the renderer draws {self.width}x{self.height}"
            )
        if self._dirty:
            self._upload()
        ctx = self.ctx
        vp = camera.view_projection()
        vp_gl = vp.T.astype("f4").tobytes()
        fog_colour = (0.10, 0.25, 0.55) if underwater else sky.fog_colour
        fog = (2.0, 14.0) if underwater else ((0.55 * fog_distance, fog_distance) if fog_distance > 0 else (1e8, 1e9))
        eye = camera.position.astype("f4")
        for prog in (self._quad_prog, self._box_prog):
            prog["u_vp"].write(vp_gl)
            prog["u_sun_dir"].value = sky.sun_direction
            prog["u_sun"].value = sky.sun_strength
            prog["u_ambient"].value = sky.ambient
            prog["u_cam"].value = tuple(eye)
            prog["u_fog_colour"].value = fog_colour
            prog["u_fog"].value = fog
        sp = self._sky_prog
        right, up, forward = camera.basis()
        tan_y = math.tan(math.radians(camera.fov_y) / 2)
        sp["u_right"].value = tuple(right * tan_y * self.width / self.height)
        sp["u_up"].value = tuple(up * tan_y)
        sp["u_forward"].value = tuple(forward)
        sp["u_zenith"].value = sky.zenith
        sp["u_horizon"].value = sky.horizon
        sp["u_sun_dir"].value = sky.sun_direction
        sp["u_is_day"].value = int(sky.is_day)
        sp["u_fog_colour"].value = fog_colour
        sp["u_underwater"].value = int(underwater)

        self._fbo.use()
        ctx.disable(moderngl.BLEND)
        ctx.depth_mask = True
        self._fbo.clear(depth=1.0)
        ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        ctx.depth_mask = False
        self._sky_vao.render(moderngl.TRIANGLES, vertices=3)
        ctx.depth_mask = True
        ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self._atlas.use(0)
        mask = _visible(self._groups, vp, camera.position)
        solid_mask, fluid_mask = mask[: self._n_solid_groups], mask[self._n_solid_groups :]
        self._draw_groups(self._solid, solid_mask)
        if self._n_boxes:
            self._box_vao.render(moderngl.TRIANGLES, vertices=36, instances=self._n_boxes)
        if fluid_mask.any():
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
            ctx.disable(moderngl.CULL_FACE)  # fluid surfaces are seen from both sides (from under water too)
            self._draw_groups(self._fluid, fluid_mask)
            ctx.disable(moderngl.BLEND)
        return self._target.read(camera, depth, segmentation)

    def release(self) -> None:
        """Free this renderer's GPU objects (the shared context stays)."""
        for obj in (
            self._target, self._quad_vao, self._quad_buf, self._box_vao,
            self._box_buf, self._sky_vao, self._indirect, self._index_buf, self._atlas, self._quad_prog, self._box_prog,
            self._sky_prog,
        ):
            obj.release()


__all__ = ["BOX_FIELDS", "DIRECTIONS", "ENTITY_SEG_OFFSET", "RenderOutput", "VoxelRenderer"]
