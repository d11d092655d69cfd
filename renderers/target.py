"""An offscreen render target: colour (RGBA8), segmentation (R16UI) and depth, with readback to numpy.

Shared by every renderer so images come back the same way: top row first, `uint8 (H, W, 3)` colour,
`uint16 (H, W)` segmentation, `float32 (H, W)` z-depth (inf where nothing was drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np

from renderers.camera import Camera


@dataclass
class RenderOutput:
    """One rendered view. rgb: (H, W, 3) uint8; depth: (H, W) float32 z-depth (inf = background) or None;
    segmentation: (H, W) uint16 (renderer-specific ids, 0 = background) or None."""

    rgb: np.ndarray
    depth: np.ndarray | None = None
    segmentation: np.ndarray | None = None


class RenderTarget:
    """Framebuffer with colour + segmentation attachments and a depth texture."""

    def __init__(self, ctx: moderngl.Context, width: int, height: int) -> None:
        if int(width) != width or int(height) != height or width <= 0 or height <= 0:
            raise ValueError(f"render size must be positive integers, got width={width}, height={height}")
        self.width, self.height = int(width), int(height)
        limit = min(int(ctx.info["GL_MAX_TEXTURE_SIZE"]), int(ctx.info["GL_MAX_RENDERBUFFER_SIZE"]))
        if max(self.width, self.height) > limit:
            raise ValueError(f"render size {self.width}x{self.height} is over this machine's OpenGL limit: at most "
                             f"{limit} pixels a side")
        self._colour = ctx.texture((self.width, self.height), 4)
        self._seg = ctx.texture((self.width, self.height), 1, dtype="u2")
        self._depth = ctx.depth_texture((self.width, self.height))
        self.fbo = ctx.framebuffer(color_attachments=[self._colour, self._seg], depth_attachment=self._depth)
        self._rgba = bytearray(self.width * self.height * 4)

    def read(self, camera: Camera, depth: bool, segmentation: bool) -> RenderOutput:
        w, h = self.width, self.height
        # RGBA readback is a plain copy in Mesa; asking for RGB costs a per-pixel conversion (measured ~2x slower).
        self.fbo.read_into(self._rgba, components=4, attachment=0)
        out = RenderOutput(np.frombuffer(self._rgba, dtype=np.uint8).reshape(h, w, 4)[::-1, :, :3].copy())
        if segmentation:
            raw = self.fbo.read(components=1, attachment=1, dtype="u2")
            out.segmentation = np.frombuffer(raw, dtype=np.uint16).reshape(h, w)[::-1].copy()
        if depth:
            raw = self.fbo.read(components=1, attachment=-1, dtype="f4")
            out.depth = camera.linearize_depth(np.frombuffer(raw, dtype=np.float32).reshape(h, w)[::-1])
        return out

    def release(self) -> None:
        for obj in (self.fbo, self._colour, self._seg, self._depth):
            obj.release()
