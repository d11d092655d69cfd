"""The renderer: colours at known pixels, depth and its ordering, segmentation ids, any image size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.voxel.blocks import FLUID, MATERIALS, OPAQUE, Block, materials_by_id
from renderers import Camera, VoxelRenderer, sky_state
from renderers.mesher import greedy_merge, mesh_region, split_by_chunk, visible_faces


def _scene(blocks: dict[tuple[int, int, int], int], floor: int | None = Block.STONE) -> np.ndarray:
    """A 16x64x16 chunk (padded) with a floor at y=9 and the given blocks."""
    padded = np.zeros((18, 66, 18), np.uint8)
    if floor is not None:
        padded[1:-1, 1:11, 1:-1] = floor  # y 0..9
    for (x, y, z), b in blocks.items():
        padded[x + 1, y + 1, z + 1] = b
    return padded


def _renderer(padded: np.ndarray, width: int, height: int, textured: bool = False) -> VoxelRenderer:
    r = VoxelRenderer(width, height, materials_by_id(), textured=textured)
    solid, fluid = mesh_region(padded, (0, 0, 0), OPAQUE, FLUID)
    empty = np.zeros((0, 8), np.float32)
    fluid_by = split_by_chunk(fluid)
    for key, q in split_by_chunk(solid).items():
        r.set_chunk(key, q, fluid_by.get(key, empty))
    return r


def _lit(colour, normal, hours=12.0, face_shade=1.0):
    """The documented lighting model: albedo * face shade * (ambient + sun * max(n.l, 0))."""
    sky = sky_state(hours)
    light = face_shade * (sky.ambient + sky.sun_strength * max(0.0, float(np.dot(normal, sky.sun_direction))))
    return np.clip(np.array(colour) * light, 0, 255)


def test_floor_colour_and_depth_looking_straight_down():
    r = _renderer(_scene({}), 48, 32)
    cam = Camera(position=np.array([8.0, 15.0, 8.0]), pitch=90.0, width=48, height=32)
    out = r.render(cam, sky_state(12.0), fog_distance=0, depth=True, segmentation=True)
    centre = out.rgb[16, 24].astype(float)
    expected = _lit(MATERIALS[Block.STONE].colour, (0, 1, 0))
    assert np.abs(centre - expected).max() <= 2, (centre, expected)
    # The floor's top face is at y=10, the eye at 15: a plane 5 units away along the optical axis.
    assert out.depth[16, 24] == pytest.approx(5.0, abs=0.02)
    assert np.allclose(out.depth[4:28, 8:40], 5.0, atol=0.05)  # a plane facing the camera has constant z-depth
    assert (out.segmentation == Block.STONE).all()
    r.release()


def test_known_block_lands_on_its_projected_pixel_with_exact_emissive_colour():
    r = _renderer(_scene({(8, 12, 12): Block.GOAL}), 64, 48)
    cam = Camera(position=np.array([8.5, 12.5, 2.5]), yaw=0.0, pitch=0.0, width=64, height=48)
    out = r.render(cam, sky_state(12.0), fog_distance=0, depth=True, segmentation=True)
    uv, z = cam.project(np.array([[8.5, 12.5, 12.0]]))  # centre of the block's near face
    u, v = int(uv[0, 0]), int(uv[0, 1])
    assert (u, v) == (32, 24)
    assert tuple(out.rgb[v, u]) == MATERIALS[Block.GOAL].colour  # emissive, flat: the albedo itself
    assert out.segmentation[v, u] == Block.GOAL
    assert out.depth[v, u] == pytest.approx(z[0], abs=0.02)
    # Above the horizon there is only sky (segmentation 0, infinite depth), and it is bluish at noon.
    assert out.segmentation[0, 0] == 0 and math.isinf(out.depth[0, 0])
    sky_px = out.rgb[0, 0].astype(int)
    assert sky_px[2] > sky_px[0]
    r.release()


def test_depth_ordering_near_block_hides_far_block():
    scene = _scene({(8, 11, 6): Block.DIRT, (8, 11, 12): Block.GOAL}, floor=None)
    r = _renderer(scene, 40, 40)
    cam = Camera(position=np.array([8.5, 11.5, 1.5]), width=40, height=40)
    out = r.render(cam, sky_state(12.0), fog_distance=0, depth=True, segmentation=True)
    assert out.segmentation[20, 20] == Block.DIRT
    assert out.depth[20, 20] == pytest.approx(6.0 - 1.5, abs=0.02)
    # Move the near block away: the far one shows, further away.
    del_scene = _scene({(8, 11, 12): Block.GOAL}, floor=None)
    r2 = _renderer(del_scene, 40, 40)
    out2 = r2.render(cam, sky_state(12.0), fog_distance=0, depth=True, segmentation=True)
    assert out2.segmentation[20, 20] == Block.GOAL
    assert out2.depth[20, 20] > out.depth[20, 20]
    r.release()
    r2.release()


@pytest.mark.parametrize("size", [(96, 40), (33, 77), (1, 1)])
def test_any_image_size(size):
    w, h = size
    r = _renderer(_scene({}), w, h, textured=True)
    cam = Camera(position=np.array([8.0, 14.0, 0.5]), pitch=30.0, width=w, height=h)
    out = r.render(cam, sky_state(9.0), depth=True, segmentation=True)
    assert out.rgb.shape == (h, w, 3) and out.rgb.dtype == np.uint8
    assert out.depth.shape == (h, w) and out.segmentation.shape == (h, w)
    k = cam.intrinsics()
    assert k[0, 2] == w / 2 and k[1, 2] == h / 2
    r.release()


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="width"):
        VoxelRenderer(0, 10, materials_by_id())
    with pytest.raises(ValueError, match="width and height"):
        Camera(width=-1, height=4)


def test_night_is_darker_than_noon():
    r = _renderer(_scene({}), 32, 32, textured=True)
    cam = Camera(position=np.array([8.0, 14.0, 0.5]), pitch=20.0, width=32, height=32)
    noon = r.render(cam, sky_state(12.0)).rgb.mean()
    night = r.render(cam, sky_state(0.0)).rgb.mean()
    assert night < 0.5 * noon
    r.release()


def test_hidden_faces_are_culled_and_greedy_merge_covers_the_same_area():
    padded = np.zeros((18, 66, 18), np.uint8)
    padded[1:5, 1:3, 1:4] = Block.STONE  # a 4x2x3 box: 2*(4*2 + 4*3 + 2*3) = 52 unit faces outside
    solid, _ = visible_faces(padded, (0, 0, 0), OPAQUE, FLUID)
    assert len(solid) == 52
    merged = greedy_merge(solid)
    assert len(merged) == 6  # one rectangle per side of the box
    area = sum(float(np.prod(q[5:8])) for q in merged)
    assert area == 52


def test_water_is_a_separate_translucent_mesh():
    padded = np.zeros((18, 66, 18), np.uint8)
    padded[1:-1, 1:5, 1:-1] = Block.SAND
    padded[1:-1, 5:7, 1:-1] = Block.WATER
    solid, fluid = visible_faces(padded, (0, 0, 0), OPAQUE, FLUID)
    assert set(fluid[:, 4].astype(int)) == {Block.WATER}
    # Sand under water still shows its top (water does not occlude), water-water faces are culled.
    assert ((solid[:, 3] == 2) & (solid[:, 4] == Block.SAND)).sum() == 16 * 16
    assert (fluid[:, 3] == 2).sum() == 16 * 16


def test_missing_egl_is_a_clear_error_naming_the_packages():
    import subprocess
    import sys

    code = (
        "import moderngl, renderers.context as c\n"
        "def boom(**kw): raise Exception('libEGL.so.1: cannot open shared object file')\n"
        "moderngl.create_standalone_context = boom\n"
        "try:\n    c.get_context()\nexcept c.RendererUnavailable as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "libegl1" in out and "libegl-mesa0" in out and "libEGL.so.1" in out
