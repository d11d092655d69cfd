"""Headless moderngl renderers (EGL + Mesa llvmpipe on CPU, any GPU with EGL).

One GL context per rendering thread (`get_context`); the renderers of a thread share it. Nothing here knows
about gym envs.
"""

from renderers.camera import Camera
from renderers.context import RendererUnavailable, get_context, release_context
from renderers.sky import SkyState, sky_state
from renderers.target import RenderOutput, RenderTarget
from renderers.voxel_renderer import VoxelRenderer

__all__ = [
    "Camera",
    "RenderOutput",
    "RenderTarget",
    "RendererUnavailable",
    "SkyState",
    "VoxelRenderer",
    "get_context",
    "release_context",
    "sky_state",
]
