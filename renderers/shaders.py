"""GLSL sources of the voxel renderer (OpenGL 4.3 core)."""

# Shared lighting and fog; `FACE_SHADE` darkens faces by direction like Minecraft's flat shading.
_LIGHT = """
uniform vec3 u_sun_dir;
uniform float u_sun;
uniform float u_ambient;
uniform vec3 u_cam;
uniform vec3 u_fog_colour;
uniform vec2 u_fog;          // start, end distance
const float FACE_SHADE[6] = float[6](0.80, 0.80, 1.00, 0.55, 0.65, 0.65);
vec3 apply_fog(vec3 c, vec3 world) {
    float f = clamp((distance(world, u_cam) - u_fog.x) / max(u_fog.y - u_fog.x, 1e-3), 0.0, 1.0);
    return mix(c, u_fog_colour, f * f);
}
float light(vec3 n, int dir) {
    return FACE_SHADE[dir] * (u_ambient + u_sun * max(dot(n, u_sun_dir), 0.0));
}
"""

QUAD_VS = """
#version 430
in vec3 in_pos;
in vec2 in_tex;
in float in_code;   // dir * 256 + block id
uniform mat4 u_vp;
out vec3 v_world;
out vec2 v_tex;
flat out int v_dir;
flat out int v_block;
void main() {
    int code = int(in_code + 0.5);
    v_world = in_pos;
    v_tex = in_tex;
    v_dir = code >> 8;
    v_block = code & 255;
    gl_Position = u_vp * vec4(in_pos, 1.0);
}
"""

QUAD_FS = (
    """
#version 430
in vec3 v_world;
in vec2 v_tex;
flat in int v_dir;
flat in int v_block;
uniform sampler2DArray u_atlas;
uniform int u_layer_of[768];   // block * 3 + face kind (0 top, 1 side, 2 bottom)
uniform int u_emissive[256];
layout(location = 0) out vec4 f_colour;
layout(location = 1) out uint f_seg;
const vec3 NORMALS[6] = vec3[6](vec3(1,0,0), vec3(-1,0,0), vec3(0,1,0), vec3(0,-1,0), vec3(0,0,1), vec3(0,0,-1));
"""
    + _LIGHT
    + """
void main() {
    int kind = v_dir == 2 ? 0 : (v_dir == 3 ? 2 : 1);
    ivec2 texel = ivec2(floor(fract(v_tex) * 16.0));
    vec4 albedo = texelFetch(u_atlas, ivec3(texel, u_layer_of[v_block * 3 + kind]), 0);
    float l = u_emissive[v_block] == 1 ? 1.0 : light(NORMALS[v_dir], v_dir);
    f_colour = vec4(apply_fog(albedo.rgb * l, v_world), albedo.a);
    f_seg = uint(v_block);
}
"""
)

BOX_VS = """
#version 430
in vec3 in_centre;
in vec3 in_size;
in float in_yaw;
in vec3 in_colour;
in float in_seg;
uniform mat4 u_vp;
out vec3 v_world;
flat out vec3 v_colour;
flat out int v_face;
flat out uint v_seg;
flat out vec3 v_normal;
// A unit cube as 12 triangles, counter-clockwise from outside; faces in direction order (+x,-x,+y,-y,+z,-z).
const vec3 CORNERS[8] = vec3[8](vec3(-.5,-.5,-.5), vec3(.5,-.5,-.5), vec3(-.5,.5,-.5), vec3(.5,.5,-.5),
                                vec3(-.5,-.5,.5), vec3(.5,-.5,.5), vec3(-.5,.5,.5), vec3(.5,.5,.5));
const int IDX[36] = int[36](1,3,7, 1,7,5,  0,4,6, 0,6,2,  2,6,7, 2,7,3,  0,1,5, 0,5,4,  4,5,7, 4,7,6,  0,2,3, 0,3,1);
const vec3 NORMALS[6] = vec3[6](vec3(1,0,0), vec3(-1,0,0), vec3(0,1,0), vec3(0,-1,0), vec3(0,0,1), vec3(0,0,-1));
void main() {
    int face = gl_VertexID / 6;
    vec3 local = CORNERS[IDX[gl_VertexID]] * in_size;
    float c = cos(in_yaw), s = sin(in_yaw);
    mat3 rot = mat3(c, 0.0, -s,  0.0, 1.0, 0.0,  s, 0.0, c);
    vec3 p = in_centre + rot * local;
    v_world = p;
    v_colour = in_colour;
    v_face = face;
    v_normal = rot * NORMALS[face];
    v_seg = uint(in_seg + 0.5);
    gl_Position = u_vp * vec4(p, 1.0);
}
"""

BOX_FS = (
    """
#version 430
in vec3 v_world;
flat in vec3 v_colour;
flat in int v_face;
flat in uint v_seg;
flat in vec3 v_normal;
layout(location = 0) out vec4 f_colour;
layout(location = 1) out uint f_seg;
"""
    + _LIGHT
    + """
void main() {
    f_colour = vec4(apply_fog(v_colour * light(v_normal, v_face), v_world), 1.0);
    f_seg = v_seg;
}
"""
)

SKY_VS = """
#version 430
uniform vec3 u_right;    // camera right * tan(fov_x / 2)
uniform vec3 u_up;       // camera up * tan(fov_y / 2)
uniform vec3 u_forward;
out vec3 v_dir;
void main() {
    vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2) * 2.0 - 1.0;  // one triangle covering the screen
    v_dir = u_forward + p.x * u_right + p.y * u_up;  // linear in screen space, so interpolation is exact
    gl_Position = vec4(p, 1.0, 1.0);
}
"""

SKY_FS = """
#version 430
in vec3 v_dir;
uniform vec3 u_zenith;
uniform vec3 u_horizon;
uniform vec3 u_sun_dir;
uniform int u_is_day;
uniform vec3 u_fog_colour;
uniform int u_underwater;
layout(location = 0) out vec4 f_colour;
layout(location = 1) out uint f_seg;
void main() {
    vec3 dir = normalize(v_dir);
    float h = clamp(dir.y, 0.0, 1.0);
    vec3 c = mix(u_horizon, u_zenith, sqrt(h));
    float sd = dot(dir, u_sun_dir);
    if (u_is_day == 1) {
        c = mix(c, vec3(1.0, 0.95, 0.8), smoothstep(0.9975, 0.999, sd));
    } else {
        c = mix(c, vec3(0.85, 0.87, 0.95), smoothstep(0.9985, 0.9992, sd));
    }
    if (u_underwater == 1) c = u_fog_colour;
    f_colour = vec4(c, 1.0);
    f_seg = 0u;
}
"""
