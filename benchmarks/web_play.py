"""Frames per second of `worldsim serve`'s play page: the engine and the dream of a checkpoint stepped side by side
through the play WebSocket of a real uvicorn server on this machine, as the browser does (send the keys, wait for
both frames, send the next), with the engine alone beside it. Prints one table.

    python benchmarks/web_play.py --ckpt runs/demo/dit --steps 200
    python benchmarks/web_play.py --ckpt runs/voxel64/dit --dream-steps 1 2 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _serve(root: Path) -> tuple[str, object]:
    from worldsim.web.app import create_app, serve_in_thread

    base, server = serve_in_thread(create_app([str(root)], max_sessions=2))
    return base.replace("http://", "ws://") + "/ws/play", server


def run(ws_url: str, start: dict, steps: int, warmup: int = 10) -> dict:
    from websockets.sync.client import connect

    keys = [["w"], ["w", "arrowleft"], ["w"], ["arrowright"], []]  # walk and turn, as a player does
    with connect(ws_url, max_size=2**24) as ws:
        ws.send(json.dumps({"type": "start", **start}))
        ready = json.loads(ws.recv())
        if ready.get("type") != "ready":
            raise SystemExit(f"start failed: {ready}")
        ws.recv(), ws.recv()
        stats = {}
        t0 = time.perf_counter()
        for i in range(warmup + steps):
            if i == warmup:
                t0 = time.perf_counter()
            ws.send(json.dumps({"type": "step", "keys": keys[(i // 10) % len(keys)], "mouse": [0, 0]}))
            stats = json.loads(ws.recv())["stats"]
            ws.recv()
        seconds = time.perf_counter() - t0
    return {"size": f"{ready['width']}x{ready['height']}", "fps": steps / seconds, "stats": stats}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="a world-model run (worldsim train) or checkpoint")
    p.add_argument("--steps", type=int, default=200, help="timed steps per configuration")
    p.add_argument("--dream-steps", type=int, nargs="*", default=[None],
                   help="Euler steps per dreamed frame to measure (default: the checkpoint's own)")
    p.add_argument("--engine", default="voxel")
    args = p.parse_args()
    ckpt = Path(args.ckpt).resolve()
    root = ckpt.parent
    ws_url, server = _serve(root)
    import torch

    print(f"# worldsim serve play speed: {ckpt}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.steps} steps after 10 warm-up steps, one session")
    print("| configuration | frame size | page frames/s (both sides) | engine steps/s | dream steps/s |")
    print("|---|---|---:|---:|---:|")
    r = run(ws_url, {"engine": args.engine, "seed": 0, "width": 64, "height": 64}, args.steps)
    print(f"| engine alone | {r['size']} | {r['fps']:.1f} | {r['stats']['engine']['steps_per_s']:.0f} | - |")
    for k in args.dream_steps:
        r = run(ws_url, {"engine": args.engine, "seed": 0, "ckpt": f"0/{ckpt.name}", "steps": k}, args.steps)
        s = r["stats"]
        print(f"| engine + dream, {k or 'default'} Euler step(s) | {r['size']} | {r['fps']:.1f} | "
              f"{s['engine']['steps_per_s']:.0f} | {s['dream']['steps_per_s']:.1f} |")
    server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
