"""worldsim serve: a local web app to browse datasets and models, play the engine and the dream side by side, and
generate video, in the browser (Starlette + uvicorn; no internet needed: every script and style is served by it).

Pages: Datasets (every store under the roots: card, episodes with captions and quality; an episode plays its frames
with the action overlay, the caption of the current segment, the event timeline and the reward), Models (every run:
size, config, training curves, the stores it learned from, its evaluation reports with plots and videos), Play
(an engine and a model's dream from the same frame, the same keys; reset the dream from the engine's frame),
Generate (text or image to video, with the provenance of the result).

It reads only files under the roots (path traversal, absolute paths and symlinks out are refused) and binds
127.0.0.1 unless told otherwise. Needs the web extra: pip install "worldsim[web]".

examples:
  worldsim serve root=outputs                       # then open http://127.0.0.1:8000
  worldsim serve root=[data,runs] port=8080 max_sessions=4
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worldsim.cli import build
from worldsim.errors import InputError


@dataclass
class ServeConfig:
    root: Any = "???"
    host: str = "127.0.0.1"
    port: int = 8000
    max_sessions: int = 2
    out: str | None = None
    max_depth: int = 6


def main(raw) -> int:
    cfg = build(ServeConfig, raw, "serve config")
    if cfg.root in ("???", None, "", []):
        raise InputError("root= is required: the folder(s) to serve (worldsim serve root=DIR or root=[DIR1,DIR2])")
    roots = [str(r) for r in cfg.root] if isinstance(cfg.root, list | tuple) else [str(cfg.root)]
    if not 0 < cfg.port < 65536:
        raise InputError(f"port={cfg.port} is not a TCP port (1-65535)")
    if cfg.max_sessions < 1:
        raise InputError(f"max_sessions must be >= 1, got {cfg.max_sessions}")
    try:
        import uvicorn

        from worldsim.web.app import create_app
    except ImportError as err:
        raise InputError(f"worldsim serve needs the web extra ({err.name} is missing): "
                         "pip install 'worldsim[web]'") from None
    app = create_app(roots, out=cfg.out, max_sessions=cfg.max_sessions, max_depth=cfg.max_depth)
    a = app.state.worldsim
    print(f"worldsim serve: reading {', '.join(map(str, a.roots.dirs))}; generated videos go to {a.out}")
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"worldsim serve: listening on {cfg.host}, not only this machine: anyone who can reach it can read "
              "the served folders and use its CPU")
    print(f"worldsim serve: open http://{'127.0.0.1' if cfg.host in ('0.0.0.0', '::') else cfg.host}:{cfg.port}")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", ws="websockets-sansio")
    return 0
