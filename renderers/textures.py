"""Block materials and their procedural 16x16 textures (no image files, identical on every machine).

A material gives a base colour and a pattern per face kind (top, side, bottom). Patterns are drawn with a
fixed-seed generator, so the atlas is the same bytes everywhere; `textured=False` gives flat colours,
which tests and ablations use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEX = 16  # texels per block edge
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class BlockMaterial:
    """How one block id looks.

    Attributes:
        name: block name (for docs and errors).
        colour: base colour of the sides (RGB 0-255).
        top, bottom: colours of the top and bottom faces (default: `colour`).
        pattern: pattern name for sides; `top_pattern`/`bottom_pattern` for the other faces.
        accent: second colour used by patterns (ore spots, grass fringe, bark lines...).
        opaque: hides faces behind it. fluid: drawn translucent in a blended pass.
        emissive: ignores lighting (glows at night).
        alpha: opacity of fluids.
    """

    name: str
    colour: RGB
    top: RGB | None = None
    bottom: RGB | None = None
    pattern: str = "noise"
    top_pattern: str | None = None
    bottom_pattern: str | None = None
    accent: RGB | None = None
    opaque: bool = True
    fluid: bool = False
    emissive: bool = False
    alpha: float = 1.0

    def faces(self) -> list[tuple[RGB, str]]:
        """(colour, pattern) for the top, side and bottom faces."""
        return [
            (self.top or self.colour, self.top_pattern or self.pattern),
            (self.colour, self.pattern),
            (self.bottom or self.colour, self.bottom_pattern or self.top_pattern or self.pattern),
        ]


def _pattern(name: str, base: np.ndarray, accent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One (16, 16, 3) float texture; row 0 is the top of a side face."""
    y, x = np.mgrid[0:TEX, 0:TEX]
    jitter = rng.uniform(-1, 1, (TEX, TEX, 1))
    img = np.broadcast_to(base, (TEX, TEX, 3)).astype(np.float64).copy()
    if name == "flat":
        return img
    if name == "noise":
        return img * (1 + 0.08 * jitter)
    if name == "grain":  # sand, snow: fine and faint
        return img * (1 + 0.04 * jitter)
    if name == "gravel":
        blobs = rng.integers(0, 3, (TEX, TEX, 1))
        return img * (0.8 + 0.15 * blobs) * (1 + 0.05 * jitter)
    if name == "fringe":  # grass/snow side: dirt with the top colour hanging down unevenly
        depth = 3 + rng.integers(0, 3, TEX)
        top = (y < depth[x])[..., None]
        return np.where(top, accent, img) * (1 + 0.07 * jitter)
    if name == "bark":
        lines = ((x + rng.integers(0, 2, (TEX, TEX))) % 4 == 0)[..., None]
        return img * np.where(lines, 0.7, 1.0) * (1 + 0.06 * jitter)
    if name == "rings":
        r = np.hypot(x - 7.5, y - 7.5)
        return np.where((r.astype(int) % 3 == 0)[..., None], accent, img) * (1 + 0.04 * jitter)
    if name == "planks":
        seams = (y % 4 == 3) | ((x == (y // 4) * 5 % TEX) & (y % 4 != 3))
        return img * np.where(seams[..., None], 0.72, 1.0) * (1 + 0.05 * jitter)
    if name == "cobble":
        cells = ((x + 4 * (y // 5)) % 6 == 0) | (y % 5 == 0)
        return img * np.where(cells[..., None], 0.65, 1.0) * (1 + 0.1 * jitter)
    if name == "leaves":
        holes = rng.random((TEX, TEX, 1)) < 0.22
        return img * np.where(holes, 0.6, 1.0) * (1 + 0.1 * jitter)
    if name == "ore":
        spots = rng.random((TEX, TEX)) < 0.16
        spots |= np.roll(spots, 1, axis=1) & (rng.random((TEX, TEX)) < 0.5)
        return np.where(spots[..., None], accent, img * (1 + 0.08 * jitter))
    if name == "cactus":
        ribs = (x % 5 == 2)[..., None]
        return img * np.where(ribs, 0.75, 1.0) * (1 + 0.05 * jitter)
    if name == "water":
        waves = 0.5 + 0.5 * np.sin((x + 2 * np.sin(y / 2.5)) / 2.0)
        return img * (0.9 + 0.15 * waves[..., None])
    if name == "beacon":
        ring = (np.maximum(np.abs(x - 7.5), np.abs(y - 7.5)) > 5.5)[..., None]
        return np.where(ring, accent, img)
    raise ValueError(f"unknown texture pattern {name!r}")


def build_atlas(materials: Sequence[BlockMaterial | None], textured: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Texture layers for every block id.

    Args:
        materials: indexed by block id; None for ids that are never drawn (air).
        textured: False gives flat base colours.

    Returns:
        (layers, layer_of): `layers` is (L, 16, 16, 4) uint8 RGBA; `layer_of[block, face_kind]` (face kind 0 top,
        1 side, 2 bottom) gives the layer index. # (256, 3) int32
    """
    layers = [np.zeros((TEX, TEX, 4), dtype=np.uint8)]
    layer_of = np.zeros((256, 3), dtype=np.int32)
    for block_id, mat in enumerate(materials):
        if mat is None:
            continue
        rng = np.random.default_rng(1000 + block_id)  # fixed seed: the atlas is identical on every machine
        accent = np.array(mat.accent or mat.colour, dtype=np.float64)
        for kind, (colour, pattern) in enumerate(mat.faces()):
            img = _pattern(pattern if textured else "flat", np.array(colour, np.float64), accent, rng)
            rgba = np.empty((TEX, TEX, 4), dtype=np.uint8)
            rgba[..., :3] = np.clip(np.rint(img), 0, 255)
            rgba[..., 3] = round(255 * mat.alpha)
            layer_of[block_id, kind] = len(layers)
            layers.append(rgba)
    return np.stack(layers), layer_of
