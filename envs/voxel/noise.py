"""Coordinate-hashed noise: the value at a point depends only on (seed, coordinates), never on the order
in which chunks are generated, so an unbounded world is the same whichever way it is explored."""

from __future__ import annotations

import numpy as np

_M32 = np.uint64(0xFFFFFFFF)


def hash_u32(seed: int, *coords: np.ndarray) -> np.ndarray:
    """A well-mixed 32-bit hash of integer coordinates (any broadcastable shapes). Returns uint64 in [0, 2^32)."""
    h = np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B1) & _M32
    for i, c in enumerate(coords):
        c = np.asarray(c).astype(np.int64).astype(np.uint64) & _M32
        h = (h ^ (c * np.uint64((0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)[i % 3]) & _M32)) & _M32
        h = (h ^ (h >> np.uint64(15))) * np.uint64(0x2C1B3C6D) & _M32
        h = (h ^ (h >> np.uint64(12))) * np.uint64(0x297A2D39) & _M32
        h = h ^ (h >> np.uint64(15))
    return h


def uniform01(seed: int, *coords: np.ndarray) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1) per integer coordinate."""
    return hash_u32(seed, *coords).astype(np.float64) / 4294967296.0


def perlin2(x: np.ndarray, z: np.ndarray, seed: int) -> np.ndarray:
    """2-D gradient noise in about [-1, 1] at real coordinates (unit lattice)."""
    x0, z0 = np.floor(x), np.floor(z)
    fx, fz = x - x0, z - z0
    ix, iz = x0.astype(np.int64), z0.astype(np.int64)

    def grad(dx: int, dz: int) -> np.ndarray:
        angle = uniform01(seed, ix + dx, iz + dz) * (2 * np.pi)
        return np.cos(angle) * (fx - dx) + np.sin(angle) * (fz - dz)

    u = fx * fx * fx * (fx * (fx * 6 - 15) + 10)  # quintic fade (Perlin 2002)
    v = fz * fz * fz * (fz * (fz * 6 - 15) + 10)
    a = grad(0, 0) + u * (grad(1, 0) - grad(0, 0))
    b = grad(0, 1) + u * (grad(1, 1) - grad(0, 1))
    return (a + v * (b - a)) * 1.41


def fbm2(x: np.ndarray, z: np.ndarray, seed: int, scale: float, octaves: int = 4) -> np.ndarray:
    """Fractal sum of `octaves` gradient-noise layers with base wavelength `scale` blocks, about [-1, 1]."""
    total = np.zeros(np.broadcast(x, z).shape)
    amp, freq, norm = 1.0, 1.0 / scale, 0.0
    for o in range(octaves):
        total += amp * perlin2(x * freq, z * freq, seed + 7919 * o)
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total / norm
