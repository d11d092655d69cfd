"""The block world: chunk storage, block queries and edits, ray casts, and meshing of changed chunks."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from envs.voxel.blocks import FLUID, OPAQUE, SOLID, Block
from envs.voxel.worldgen import HEIGHT, Biome, Region, animal_spawns, generate_region
from renderers.mesher import CHUNK, mesh_region, split_by_chunk

ChunkKey = tuple[int, int]


class VoxelWorld:
    """An unbounded (chunk-generated) world of `HEIGHT`-block tall columns.

    Blocks are generated on demand from the seed. Columns outside the generated area read as stone, so nothing
    can fall out of the world; below y=0 is bedrock and above the top is air.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.chunks: dict[ChunkKey, np.ndarray] = {}  # (16, HEIGHT, 16) uint8 per chunk
        self.heights: dict[ChunkKey, np.ndarray] = {}  # (16, 16) top terrain block
        self.biomes: dict[ChunkKey, np.ndarray] = {}  # (16, 16) Biome
        self.dirty: set[ChunkKey] = set()  # chunks whose mesh is out of date
        self.edited: set[ChunkKey] = set()  # chunks changed since generation (never unloaded)
        self.new_animals: list[tuple[str, int, int]] = []  # spawns of freshly generated chunks, for the env

    # -- generation -----------------------------------------------------------------------------------------
    def ensure(self, keys: Iterable[ChunkKey]) -> list[ChunkKey]:
        """Generate the chunks in `keys` that do not exist yet (one region call for a compact set)."""
        missing = sorted(k for k in set(keys) if k not in self.chunks)
        if not missing:
            return []
        xs, zs = [k[0] for k in missing], [k[1] for k in missing]
        nx, nz = max(xs) - min(xs) + 1, max(zs) - min(zs) + 1
        if nx * nz <= 2 * len(missing):
            self._take(generate_region(self.seed, min(xs) * CHUNK, min(zs) * CHUNK, nx * CHUNK, nz * CHUNK),
                       missing)
        else:
            for k in missing:
                self._take(generate_region(self.seed, k[0] * CHUNK, k[1] * CHUNK, CHUNK, CHUNK), [k])
        return missing

    def _take(self, region: Region, keys: list[ChunkKey]) -> None:
        for cx, cz in keys:
            i, j = cx * CHUNK - region.x0, cz * CHUNK - region.z0
            self.chunks[(cx, cz)] = np.ascontiguousarray(region.blocks[i : i + CHUNK, :, j : j + CHUNK])
            self.heights[(cx, cz)] = region.height[i : i + CHUNK, j : j + CHUNK].copy()
            self.biomes[(cx, cz)] = region.biome[i : i + CHUNK, j : j + CHUNK].copy()
            self.new_animals.extend(animal_spawns(self.seed, cx, cz, region))
            self.dirty.add((cx, cz))

    def unload(self, keep: set[ChunkKey]) -> list[ChunkKey]:
        """Drop chunks not in `keep` that were never edited. Returns the dropped keys."""
        gone = [k for k in self.chunks if k not in keep and k not in self.edited]
        for k in gone:
            del self.chunks[k], self.heights[k], self.biomes[k]
            self.dirty.discard(k)
        return gone

    # -- queries --------------------------------------------------------------------------------------------
    def get(self, x: int, y: int, z: int) -> int:
        """Block id at integer coordinates."""
        if y < 0:
            return int(Block.BEDROCK)
        if y >= HEIGHT:
            return int(Block.AIR)
        c = self.chunks.get((x >> 4, z >> 4))
        if c is None:
            return int(Block.STONE)
        return int(c[x & 15, y, z & 15])

    def is_solid(self, x: int, y: int, z: int) -> bool:
        return bool(SOLID[self.get(x, y, z)])

    def biome(self, x: float, z: float) -> Biome:
        xi, zi = math.floor(x), math.floor(z)
        b = self.biomes.get((xi >> 4, zi >> 4))
        return Biome.PLAINS if b is None else Biome(int(b[xi & 15, zi & 15]))

    def surface_y(self, x: int, z: int) -> int:
        """y of the highest non-air block of a column (its top face is at surface_y + 1); generates the chunk."""
        key = (x >> 4, z >> 4)
        if key not in self.chunks:
            self.ensure([key])
        c = self.chunks[key]
        col = np.flatnonzero(c[x & 15, :, z & 15])
        return int(col[-1]) if len(col) else 0

    # -- edits ----------------------------------------------------------------------------------------------
    def set(self, x: int, y: int, z: int, block: int) -> None:
        """Set one block and mark the chunks whose meshes it touches as dirty."""
        if not 0 <= y < HEIGHT:
            raise ValueError(f"y={y} is outside the world's height [0, {HEIGHT})")
        key = (x >> 4, z >> 4)
        if key not in self.chunks:
            self.ensure([key])
        self.chunks[key][x & 15, y, z & 15] = block
        self.edited.add(key)
        for dx, dz in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            k = ((x + dx) >> 4, (z + dz) >> 4)
            if k in self.chunks:
                self.dirty.add(k)

    # -- ray casting ----------------------------------------------------------------------------------------
    def raycast(self, origin: np.ndarray, direction: np.ndarray, reach: float
                ) -> tuple[tuple[int, int, int], tuple[int, int, int], float] | None:
        """First non-air, non-fluid block along a ray (voxel DDA, Amanatides & Woo 1987).

        Returns:
            (block position, face normal of the entered face, distance), or None within `reach`.
        """
        pos = [math.floor(v) for v in origin]
        step, t_max, t_delta = [0, 0, 0], [math.inf] * 3, [math.inf] * 3
        for i in range(3):
            d = float(direction[i])
            if d > 0:
                step[i], t_max[i], t_delta[i] = 1, (pos[i] + 1 - origin[i]) / d, 1 / d
            elif d < 0:
                step[i], t_max[i], t_delta[i] = -1, (origin[i] - pos[i]) / -d, -1 / d
        normal = (0, 0, 0)
        t = 0.0
        while t <= reach:
            b = self.get(*pos)
            if b != Block.AIR and not FLUID[b]:
                return (pos[0], pos[1], pos[2]), normal, t
            i = 0 if t_max[0] < t_max[1] and t_max[0] < t_max[2] else (1 if t_max[1] < t_max[2] else 2)
            t = t_max[i]
            pos[i] += step[i]
            t_max[i] += t_delta[i]
            normal = tuple(-step[i] if k == i else 0 for k in range(3))
        return None

    # -- meshing --------------------------------------------------------------------------------------------
    def _padded(self, cx0: int, cz0: int, ncx: int, ncz: int) -> np.ndarray:
        """Blocks of a chunk rectangle with a one-block border from the neighbours (stone where missing)."""
        nx, nz = ncx * CHUNK, ncz * CHUNK
        out = np.full((nx + 2, HEIGHT + 2, nz + 2), Block.STONE, dtype=np.uint8)
        out[:, -1, :] = Block.AIR
        for i in range(-1, ncx + 1):
            for j in range(-1, ncz + 1):
                c = self.chunks.get((cx0 + i, cz0 + j))
                if c is None:
                    continue
                xa, za = max(i * CHUNK, -1), max(j * CHUNK, -1)
                xb, zb = min((i + 1) * CHUNK, nx + 1), min((j + 1) * CHUNK, nz + 1)
                out[xa + 1 : xb + 1, 1:-1, za + 1 : zb + 1] = c[xa - i * CHUNK : xb - i * CHUNK, :,
                                                              za - j * CHUNK : zb - j * CHUNK]
        return out

    def mesh(self, keys: Iterable[ChunkKey]) -> dict[ChunkKey, tuple[np.ndarray, np.ndarray]]:
        """Greedy meshes (solid quads, fluid quads) of the given chunks; clears their dirty flags."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        xs, zs = [k[0] for k in keys], [k[1] for k in keys]
        ncx, ncz = max(xs) - min(xs) + 1, max(zs) - min(zs) + 1
        groups = [keys] if ncx * ncz <= 2 * len(keys) else [[k] for k in keys]
        out: dict[ChunkKey, tuple[np.ndarray, np.ndarray]] = {}
        for group in groups:
            gx, gz = min(k[0] for k in group), min(k[1] for k in group)
            gnx, gnz = max(k[0] for k in group) - gx + 1, max(k[1] for k in group) - gz + 1
            padded = self._padded(gx, gz, gnx, gnz)
            solid, fluid = mesh_region(padded, (gx * CHUNK, 0, gz * CHUNK), OPAQUE, FLUID)
            solid_by, fluid_by = split_by_chunk(solid), split_by_chunk(fluid)
            empty = np.zeros((0, 8), np.float32)
            for k in group:
                out[k] = (solid_by.get(k, empty), fluid_by.get(k, empty))
                self.dirty.discard(k)
        return out
