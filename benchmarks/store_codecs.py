"""Which compression for dataset frames? Sizes and speeds of Blosc/zstd settings on real voxel frames, one run.

    python benchmarks/store_codecs.py [--frames 256]

Records frames from Voxel-v0 with the explorer policy at 64x64, writes them with each codec into a local zarr v3
array chunked like the stores (~2 MB chunks), and prints bytes per frame, write and read MB/s (one process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import zarr
from zarr.codecs import BloscCodec


def _frames(n: int) -> np.ndarray:
    from datagen.policies import ExplorerPolicy
    from datagen.rollout import Job, make_env

    env = make_env(Job(env_id="worldsim/Voxel-v0", width=64, height=64))
    policy = ExplorerPolicy(np.random.default_rng(0))
    obs, info = env.reset(seed=0)
    out = [obs]
    for _ in range(n - 1):
        obs, *_, info = env.step(policy.act(info))
        out.append(obs)
    env.close()
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=256)
    args = parser.parse_args()
    frames = _frames(args.frames)
    print(f"{len(frames)} voxel frames 64x64, raw {frames[0].nbytes} bytes each, zarr {zarr.__version__}")
    print("| codec | bytes/frame | ratio | write MB/s | read MB/s |")
    print("|---|---|---|---|---|")
    for shuffle in ("shuffle", "bitshuffle"):
        for level in (1, 3, 5):
            path = tempfile.mkdtemp()
            try:
                g = zarr.open_group(path, mode="w")
                a = g.create_array("f", shape=frames.shape, chunks=(170, 64, 64, 3), dtype="uint8",
                                   compressors=BloscCodec(cname="zstd", clevel=level, shuffle=shuffle))
                t = time.perf_counter()
                a[...] = frames
                write = frames.nbytes / (time.perf_counter() - t) / 1e6
                t = time.perf_counter()
                _ = a[...]
                read = frames.nbytes / (time.perf_counter() - t) / 1e6
                size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
            finally:
                shutil.rmtree(path)
            per = size / len(frames)
            print(f"| zstd-{level} {shuffle} | {per:.0f} | {frames[0].nbytes / per:.1f}x | {write:.0f} | {read:.0f} |")


if __name__ == "__main__":
    main()
