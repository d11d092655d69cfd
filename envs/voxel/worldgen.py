"""Procedural terrain: heightmap from layered noise, biomes from temperature and moisture, ores, trees, cacti.

`generate_region` is a pure function of (seed, region): any chunk comes out identical whether it is made alone
or as part of a larger region, so worlds are effectively unbounded and independent of exploration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from envs.voxel.blocks import Block
from envs.voxel.noise import fbm2, uniform01

HEIGHT = 64  # world height in blocks: y in [0, 64)
SEA_LEVEL = 22
TREE_MARGIN = 3  # trees whose trunk is this close outside a region can still reach into it


class Biome(IntEnum):
    WATER = 0
    PLAINS = 1
    FOREST = 2
    DESERT = 3
    SNOW = 4
    MOUNTAINS = 5
    BEACH = 6


BIOME_NAMES = {b: b.name.lower() for b in Biome}


@dataclass
class Region:
    """Blocks and per-column facts of a rectangular world region."""

    x0: int
    z0: int
    blocks: np.ndarray  # (nx, HEIGHT, nz) uint8
    height: np.ndarray  # (nx, nz) int: y of the top solid terrain block
    biome: np.ndarray  # (nx, nz) uint8 Biome


def _columns(seed: int, xs: np.ndarray, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Terrain height and biome per column. # (nx, nz) each"""
    x, z = np.meshgrid(xs.astype(np.float64), zs.astype(np.float64), indexing="ij")
    continent = fbm2(x, z, seed + 11, 220.0, 3)
    detail = fbm2(x, z, seed + 12, 40.0, 3)
    temperature = fbm2(x, z, seed + 13, 300.0, 2)
    moisture = fbm2(x, z, seed + 14, 240.0, 2)
    mountain = np.clip((fbm2(x, z, seed + 15, 180.0, 2) - 0.12) / 0.3, 0.0, 1.0)
    ridges = 1.0 - np.abs(fbm2(x, z, seed + 16, 60.0, 3))
    h = SEA_LEVEL + 3 + 11 * continent + 4 * detail + mountain**2 * 30 * ridges
    height = np.clip(np.floor(h), 3, HEIGHT - 10).astype(np.int64)

    biome = np.full(height.shape, Biome.PLAINS, dtype=np.uint8)
    biome[moisture > 0.08] = Biome.FOREST
    biome[(temperature > 0.2) & (moisture < 0.05)] = Biome.DESERT
    biome[temperature < -0.22] = Biome.SNOW
    biome[(mountain > 0.45) & (height > SEA_LEVEL + 14)] = Biome.MOUNTAINS
    biome[(height <= SEA_LEVEL + 1) & (biome != Biome.SNOW)] = Biome.BEACH
    biome[height < SEA_LEVEL] = Biome.WATER
    return height, biome


def _fill_columns(seed: int, x0: int, z0: int, height: np.ndarray, biome: np.ndarray) -> np.ndarray:
    """Stone, soil layers, water, ores and bedrock. # -> (nx, HEIGHT, nz) uint8"""
    nx, nz = height.shape
    y = np.arange(HEIGHT)[None, :, None]
    h = height[:, None, :]
    bio = biome[:, None, :]
    blocks = np.where(y <= h, Block.STONE, Block.AIR).astype(np.uint8)
    soil = (y <= h) & (y > h - 3)
    top = y == h
    xs = np.arange(x0, x0 + nx)[:, None, None]
    zs = np.arange(z0, z0 + nz)[None, None, :]
    gx, gz = np.meshgrid(np.arange(x0, x0 + nx, dtype=float), np.arange(z0, z0 + nz, dtype=float), indexing="ij")
    gravel_patch = (fbm2(gx, gz, seed + 21, 18.0, 2) > 0.45)[:, None, :]

    def layer(mask: np.ndarray, block: Block) -> None:
        np.copyto(blocks, np.uint8(block), where=mask)

    green = (bio == Biome.PLAINS) | (bio == Biome.FOREST)
    layer(soil & green, Block.DIRT)
    layer(top & green, Block.GRASS)
    layer(top & green & gravel_patch, Block.GRAVEL)
    layer(soil & ((bio == Biome.DESERT) | (bio == Biome.BEACH)), Block.SAND)
    layer(soil & (bio == Biome.SNOW), Block.DIRT)
    layer(top & (bio == Biome.SNOW), Block.SNOW)
    layer(soil & (bio == Biome.WATER), Block.SAND)
    layer(soil & (bio == Biome.WATER) & gravel_patch, Block.GRAVEL)
    layer(top & (bio == Biome.MOUNTAINS) & (y >= SEA_LEVEL + 26), Block.SNOW)
    layer(top & (bio == Biome.MOUNTAINS) & (y < SEA_LEVEL + 26) & gravel_patch, Block.GRAVEL)
    water = (y > h) & (y <= SEA_LEVEL)
    layer(water, Block.WATER)
    layer(water & (y == SEA_LEVEL) & (bio == Biome.SNOW), Block.ICE)

    # Ores: independent per-voxel draws, rarer and deeper for the precious ones.
    r = uniform01(seed + 31, xs, y, zs)
    stone = blocks == Block.STONE
    for block, p, max_y in ((Block.COAL_ORE, 0.014, 56), (Block.IRON_ORE, 0.009, 40),
                            (Block.GOLD_ORE, 0.003, 26), (Block.DIAMOND_ORE, 0.0015, 14)):
        hit = stone & (r < p) & (y <= max_y)
        layer(hit, block)
        stone &= ~hit
        r = r - p  # disjoint slices of the same uniform draw
    blocks[:, 0, :] = Block.BEDROCK
    return blocks


def _oak(trunk: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    logs = [(0, dy, 0) for dy in range(1, trunk + 1)]
    leaves = []
    for dy in range(trunk - 2, trunk + 2):
        r = 2 if dy < trunk else 1
        for dx in range(-r, r + 1):
            for dz in range(-r, r + 1):
                if (dx, dz) != (0, 0) or dy > trunk:
                    if r == 2 and abs(dx) == 2 and abs(dz) == 2:
                        continue
                    leaves.append((dx, dy, dz))
    return logs, leaves


def _spruce(trunk: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    logs = [(0, dy, 0) for dy in range(1, trunk + 1)]
    leaves = [(0, trunk + 1, 0)]
    for i, dy in enumerate(range(trunk, 2, -1)):
        r = 1 + (i % 2) * (1 + i // 3)
        r = min(r, 2)
        for dx in range(-r, r + 1):
            for dz in range(-r, r + 1):
                if (dx, dz) != (0, 0) and abs(dx) + abs(dz) <= r + 1:
                    leaves.append((dx, dy, dz))
    return logs, leaves


_TREES = {
    "oak": {t: _oak(t) for t in (4, 5, 6)},
    "spruce": {t: _spruce(t) for t in (5, 6, 7)},
}


def _stamp(blocks: np.ndarray, x0: int, z0: int, offsets, base: tuple[int, int, int], block: Block,
           replace_only_air: bool) -> None:
    nx, _, nz = blocks.shape
    for dx, dy, dz in offsets:
        x, y, z = base[0] + dx - x0, base[1] + dy, base[2] + dz - z0
        if 0 <= x < nx and 0 <= z < nz and 0 <= y < HEIGHT and (not replace_only_air or blocks[x, y, z] == 0):
            blocks[x, y, z] = block


def _plants(seed: int, blocks: np.ndarray, x0: int, z0: int, height: np.ndarray, biome: np.ndarray,
            m: int) -> None:
    """Trees and cacti whose trunks stand anywhere in the margin-extended area (`height`, `biome` cover it)."""
    ex, ez = height.shape
    xs = np.arange(x0 - m, x0 - m + ex)[:, None]
    zs = np.arange(z0 - m, z0 - m + ez)[None, :]
    r = uniform01(seed + 41, xs, zs)
    density = np.select(
        [biome == Biome.FOREST, biome == Biome.PLAINS, biome == Biome.SNOW, biome == Biome.DESERT,
         biome == Biome.MOUNTAINS],
        [0.045, 0.006, 0.012, 0.006, 0.004], 0.0)
    for i, j in zip(*np.nonzero(r < density)):
        wx, wz, top = int(xs[i, 0]), int(zs[0, j]), int(height[i, j])
        if top + 10 >= HEIGHT or top <= SEA_LEVEL:
            continue
        pick = float(uniform01(seed + 42, wx, wz))
        b = Biome(int(biome[i, j]))
        if b == Biome.DESERT:
            _stamp(blocks, x0, z0, [(0, dy, 0) for dy in range(1, 2 + int(pick * 3))], (wx, top, wz),
                   Block.CACTUS, True)
            continue
        kind = "spruce" if b in (Biome.SNOW, Biome.MOUNTAINS) else "oak"
        sizes = sorted(_TREES[kind])
        logs, leaves = _TREES[kind][sizes[int(pick * len(sizes))]]
        log, leaf = (Block.SPRUCE_LOG, Block.SPRUCE_LEAVES) if kind == "spruce" else (Block.LOG, Block.LEAVES)
        _stamp(blocks, x0, z0, leaves, (wx, top, wz), leaf, True)
        _stamp(blocks, x0, z0, logs, (wx, top, wz), log, False)


def generate_region(seed: int, x0: int, z0: int, nx: int, nz: int) -> Region:
    """Generate the blocks of world columns [x0, x0+nx) x [z0, z0+nz)."""
    m = TREE_MARGIN
    xs, zs = np.arange(x0 - m, x0 + nx + m), np.arange(z0 - m, z0 + nz + m)
    height_ext, biome_ext = _columns(seed, xs, zs)
    height, biome = height_ext[m:-m, m:-m], biome_ext[m:-m, m:-m]
    blocks = _fill_columns(seed, x0, z0, height, biome)
    _plants(seed, blocks, x0, z0, height_ext, biome_ext, m)
    return Region(x0, z0, blocks, height.copy(), biome.copy())


def animal_spawns(seed: int, cx: int, cz: int, region: Region, chunk: int = 16) -> list[tuple[str, int, int]]:
    """Animals that start in chunk (cx, cz): (kind, x, z) on grassy columns, 0-2 per chunk."""
    r = uniform01(seed + 51, np.array([cx]), np.array([cz]))[0]
    count = 0 if r < 0.55 else (1 if r < 0.85 else 2)
    out = []
    for k in range(count):
        u = uniform01(seed + 52 + k, np.array([cx, cx, cx]), np.array([cz, cz, cz]), np.array([0, 1, 2]))
        lx, lz = int(u[0] * chunk), int(u[1] * chunk)
        x, z = cx * chunk + lx, cz * chunk + lz
        ix, iz = x - region.x0, z - region.z0
        if not (0 <= ix < region.blocks.shape[0] and 0 <= iz < region.blocks.shape[2]):
            continue
        if region.blocks[ix, region.height[ix, iz], iz] not in (Block.GRASS, Block.SNOW):
            continue
        kind = ("pig", "cow", "sheep", "chicken")[int(u[2] * 4)]
        out.append((kind, x, z))
    return out
