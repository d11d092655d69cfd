"""Headless renderer for scenes of rigid meshes (the physics engine's objects), with segmentation and depth.

Meshes are uploaded once (`add_mesh`); each frame draws a list of instances, each with a model matrix, a colour,
a segmentation id and a material look (specular strength; an optional checker pattern for floors). Lighting is
one directional light plus ambient, Blinn-Phong; the background is a vertical gradient.
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
in vec3 in_pos;
in vec3 in_normal;
uniform mat4 u_vp;
uniform mat4 u_model;
out vec3 v_world;
out vec3 v_normal;
void main() {
    vec4 w = u_model * vec4(in_pos, 1.0);
    v_world = w.xyz;
    v_normal = mat3(u_model) * in_normal;   // rigid transforms only: no inverse-transpose needed
    gl_Position = u_vp * w;
}
"""

_FS = """
#version 430
in vec3 v_world;
in vec3 v_normal;
uniform vec3 u_colour;
uniform uint u_seg;
uniform float u_specular;
uniform float u_checker;      // >0: checker period in metres (floors)
uniform vec3 u_light_dir;     // towards the light
uniform float u_light;
uniform float u_ambient;
uniform vec3 u_cam;
layout(location = 0) out vec4 f_colour;
layout(location = 1) out uint f_seg;
void main() {
    vec3 n = normalize(v_normal);
    vec3 albedo = u_colour;
    if (u_checker > 0.0) {
        vec2 c = floor(v_world.xy / u_checker);
        albedo *= mod(c.x + c.y, 2.0) < 0.5 ? 1.0 : 0.82;
    }
    float diffuse = max(dot(n, u_light_dir), 0.0);
    vec3 h = normalize(u_light_dir + normalize(u_cam - v_world));
    float spec = u_specular * pow(max(dot(n, h), 0.0), 48.0) * step(0.0, diffuse);
    // Hemisphere ambient: faces turned up get a little more sky light than faces turned down.
    float amb = u_ambient * (0.8 + 0.2 * n.z);
    f_colour = vec4(albedo * (amb + u_light * diffuse) + vec3(spec * u_light), 1.0);
    f_seg = u_seg;
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


class MeshRenderer:
    """Draws rigid mesh instances (see module docstring). Any width and height."""

    def __init__(self, width: int, height: int, device_index: int = 0) -> None:
        self.ctx = ctx = get_context(device_index)
        self._target = RenderTarget(ctx, width, height)
        self.width, self.height = self._target.width, self._target.height
        self._prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        self._bg_prog = ctx.program(vertex_shader=_BG_VS, fragment_shader=_BG_FS)
        self._bg_vao = ctx.vertex_array(self._bg_prog, [])
        self._meshes: list[tuple[moderngl.VertexArray, moderngl.Buffer, moderngl.Buffer]] = []

    def add_mesh(self, mesh: Mesh) -> int:
        """Upload a mesh; returns its id for `Instance.mesh`."""
        verts, normals, tris = mesh
        data = np.concatenate([verts, normals], axis=1).astype("f4")
        vbo = self.ctx.buffer(data.tobytes())
        ibo = self.ctx.buffer(np.ascontiguousarray(tris, dtype=np.uint32).tobytes())
        vao = self.ctx.vertex_array(self._prog, [(vbo, "3f 3f", "in_pos", "in_normal")], index_buffer=ibo,
                                    index_element_size=4)
        self._meshes.append((vao, vbo, ibo))
        return len(self._meshes) - 1

    def clear_meshes(self) -> None:
        for objs in self._meshes:
            for o in objs:
                o.release()
        self._meshes.clear()

    def render(self, camera: Camera, instances: Sequence[Instance], light: Light, depth: bool = False,
               segmentation: bool = False) -> RenderOutput:
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(f"camera is {camera.width}x{camera.height} but the renderer draws {self.width}x{self.height}")
        ctx, prog = self.ctx, self._prog
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
        for inst in instances:
            prog["u_model"].write(np.asarray(inst.model, dtype="f4").T.tobytes())
            prog["u_colour"].value = tuple(inst.colour)
            prog["u_seg"].value = int(inst.seg)
            prog["u_specular"].value = inst.specular
            prog["u_checker"].value = inst.checker
            self._meshes[inst.mesh][0].render(moderngl.TRIANGLES)
        return self._target.read(camera, depth, segmentation)

    def release(self) -> None:
        self.clear_meshes()
        for o in (self._target, self._bg_vao, self._prog, self._bg_prog):
            o.release()
