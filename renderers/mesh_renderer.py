"""Headless renderer for scenes of rigid meshes (the physics engine's objects), with segmentation and depth.

Meshes are registered once (`add_mesh`); each frame draws a list of instances, each with a model matrix, a colour,
a segmentation id and a material look (specular strength; an optional checker pattern for floors). Instances are
transformed on the CPU and drawn in one call: with a dozen small objects, per-draw overhead (uniform updates,
draw setup) cost more than the vertices (measured). Static instances are baked once (`set_static`).
Lighting is one directional light plus ambient, Blinn-Phong; the background is a vertical gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import moderngl
import numpy as np

from renderers.camera import Camera
from renderers.context import get_context
from renderers.meshes import Mesh
from renderers.target import RenderOutput, RenderTarget

_VS = """
#version 430
in vec3 in_pos;      // world space (transformed on the CPU)
in vec3 in_normal;
in vec3 in_colour;
in vec3 in_look;     // segmentation id, specular strength, checker period
uniform mat4 u_vp;
out vec3 v_world;
out vec3 v_normal;
flat out vec3 v_colour;
flat out uint v_seg;
flat out float v_specular;
flat out float v_checker;
void main() {
    v_world = in_pos;
    v_normal = in_normal;
    v_colour = in_colour;
    v_seg = uint(in_look.x + 0.5);
    v_specular = in_look.y;
    v_checker = in_look.z;
    gl_Position = u_vp * vec4(in_pos, 1.0);
}
"""

_FS = """
#version 430
in vec3 v_world;
in vec3 v_normal;
flat in vec3 v_colour;
flat in uint v_seg;
flat in float v_specular;
flat in float v_checker;      // >0: checker period in metres (floors)
uniform vec3 u_light_dir;     // towards the light
uniform float u_light;
uniform float u_ambient;
uniform vec3 u_cam;
layout(location = 0) out vec4 f_colour;
layout(location = 1) out uint f_seg;
void main() {
    vec3 n = normalize(v_normal);
    vec3 albedo = v_colour;
    if (v_checker > 0.0) {
        vec2 c = floor(v_world.xy / v_checker);
        albedo *= mod(c.x + c.y, 2.0) < 0.5 ? 1.0 : 0.82;
    }
    float diffuse = max(dot(n, u_light_dir), 0.0);
    vec3 h = normalize(u_light_dir + normalize(u_cam - v_world));
    float spec = v_specular * pow(max(dot(n, h), 0.0), 48.0) * step(0.0, diffuse);
    // Hemisphere ambient: faces turned up get a little more sky light than faces turned down.
    float amb = u_ambient * (0.8 + 0.2 * n.z);
    f_colour = vec4(albedo * (amb + u_light * diffuse) + vec3(spec * u_light), 1.0);
    f_seg = v_seg;
}
"""

_BG_VS = """
#version 430
out float v_y;
void main() {
    vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2) * 2.0 - 1.0;
    v_y = p.y * 0.5 + 0.5;
    gl_Position = vec4(p, 1.0, 1.0);
}
"""

_BG_FS = """
#version 430
in float v_y;
uniform vec3 u_top;
uniform vec3 u_bottom;
layout(location = 0) out vec4 f_colour;
layout(location = 1) out uint f_seg;
void main() {
    f_colour = vec4(mix(u_bottom, u_top, clamp(v_y, 0.0, 1.0)), 1.0);
    f_seg = 0u;
}
"""


@dataclass
class Light:
    """Scene lighting. direction points towards the light (world frame)."""

    direction: tuple[float, float, float] = (0.3, -0.4, 0.85)
    strength: float = 0.75
    ambient: float = 0.35
    background_top: tuple[float, float, float] = (0.62, 0.70, 0.80)
    background_bottom: tuple[float, float, float] = (0.85, 0.86, 0.88)


@dataclass
class Instance:
    """One object to draw. model: (4, 4) local-to-world; colour: RGB in [0, 1]; seg: segmentation id (>0)."""

    mesh: int
    model: np.ndarray
    colour: tuple[float, float, float]
    seg: int
    specular: float = 0.0
    checker: float = 0.0


def _bake(mesh: Mesh, inst: Instance) -> tuple[np.ndarray, np.ndarray]:
    """World-space vertex rows (pos, normal, colour, look) and triangles of one instance. # (N, 12), (M, 3)"""
    verts, normals, tris = mesh
    m = np.asarray(inst.model, dtype=np.float64)
    rows = np.empty((len(verts), 12), dtype=np.float32)
    rows[:, 0:3] = verts @ m[:3, :3].T + m[:3, 3]
    rows[:, 3:6] = normals @ m[:3, :3].T  # rigid transforms only: no inverse-transpose needed
    rows[:, 6:9] = inst.colour
    rows[:, 9:12] = (inst.seg, inst.specular, inst.checker)
    return rows, tris


class MeshRenderer:
    """Draws rigid mesh instances (see module docstring). Any width and height."""

    def __init__(self, width: int, height: int, device_index: int = 0) -> None:
        self.ctx = ctx = get_context(device_index)
        self._target = RenderTarget(ctx, width, height)
        self.width, self.height = self._target.width, self._target.height
        self._prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        self._bg_prog = ctx.program(vertex_shader=_BG_VS, fragment_shader=_BG_FS)
        self._bg_vao = ctx.vertex_array(self._bg_prog, [])
        self._meshes: list[Mesh] = []
        self._static = (np.zeros((0, 12), np.float32), np.zeros((0, 3), np.uint32))
        self._vbo = ctx.buffer(reserve=48 * 4096, dynamic=True)
        self._ibo = ctx.buffer(reserve=12 * 4096, dynamic=True)
        self._vao = self._make_vao()

    def _make_vao(self) -> moderngl.VertexArray:
        return self.ctx.vertex_array(self._prog, [(self._vbo, "3f 3f 3f 3f", "in_pos", "in_normal", "in_colour",
                                                   "in_look")], index_buffer=self._ibo, index_element_size=4)

    def add_mesh(self, mesh: Mesh) -> int:
        """Register a mesh; returns its id for `Instance.mesh`."""
        v, n, t = mesh
        self._meshes.append((np.asarray(v, np.float64), np.asarray(n, np.float64), np.asarray(t, np.uint32)))
        return len(self._meshes) - 1

    def clear_meshes(self) -> None:
        self._meshes.clear()
        self._static = (np.zeros((0, 12), np.float32), np.zeros((0, 3), np.uint32))

    def set_static(self, instances: Sequence[Instance]) -> None:
        """Instances that never move (floors, tables): baked once, drawn with every frame."""
        self._static = self._batch(instances)

    def _batch(self, instances: Sequence[Instance], base: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rows, tris, offset = [], [], base
        for inst in instances:
            r, t = _bake(self._meshes[inst.mesh], inst)
            rows.append(r)
            tris.append(t + offset)
            offset += len(r)
        if not rows:
            return np.zeros((0, 12), np.float32), np.zeros((0, 3), np.uint32)
        return np.concatenate(rows), np.concatenate(tris)

    def render(self, camera: Camera, instances: Sequence[Instance], light: Light, depth: bool = False,
               segmentation: bool = False) -> RenderOutput:
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(f"camera is {camera.width}x{camera.height} but the renderer draws "
                             f"{self.width}x{self.height}")
        ctx, prog = self.ctx, self._prog
        static_rows, static_tris = self._static
        rows, tris = self._batch(instances, base=len(static_rows))
        rows = np.concatenate([static_rows, rows])
        tris = np.concatenate([static_tris, tris]).astype(np.uint32)
        if rows.nbytes > self._vbo.size or tris.nbytes > self._ibo.size:
            self._vbo.orphan(rows.nbytes * 2)
            self._ibo.orphan(tris.nbytes * 2)
            self._vao.release()
            self._vao = self._make_vao()
        self._vbo.write(rows.tobytes())
        self._ibo.write(tris.tobytes())
        self._target.fbo.use()
        ctx.depth_mask = True
        self._target.fbo.clear(depth=1.0)
        ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE | moderngl.BLEND)
        self._bg_prog["u_top"].value = light.background_top
        self._bg_prog["u_bottom"].value = light.background_bottom
        ctx.depth_mask = False
        self._bg_vao.render(moderngl.TRIANGLES, vertices=3)
        ctx.depth_mask = True
        ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        prog["u_vp"].write(camera.view_projection().T.astype("f4").tobytes())
        d = np.asarray(light.direction, dtype=np.float64)
        prog["u_light_dir"].value = tuple(d / np.linalg.norm(d))
        prog["u_light"].value = light.strength
        prog["u_ambient"].value = light.ambient
        prog["u_cam"].value = tuple(camera.position)
        if len(tris):
            self._vao.render(moderngl.TRIANGLES, vertices=tris.size)
        return self._target.read(camera, depth, segmentation)

    def release(self) -> None:
        for o in (self._target, self._bg_vao, self._vao, self._vbo, self._ibo, self._prog, self._bg_prog):
            o.release()
