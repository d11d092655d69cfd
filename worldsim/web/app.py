"""The ASGI app of `worldsim serve` (Starlette): dataset, model, play and generate pages, their JSON and image
endpoints, and the play WebSocket. `create_app(roots)` builds it; `worldsim.cli.serve` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import json
import math
import sys
import threading
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from worldsim.errors import InputError, UserError
from worldsim.web import catalog as K
from worldsim.web.pages import (
    data_script,
    e,
    error_box,
    kv,
    layout,
    markdown,
    pre_json,
    svg_chart,
    table,
    url,
)
from worldsim.web.paths import Forbidden, NotFound, Roots
from worldsim.web.play import ENGINES, PlaySession, engine_tasks

STATIC = Path(__file__).with_name("static")
SERVED_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                   ".mp4": "video/mp4", ".webm": "video/webm", ".json": "application/json",
                   ".jsonl": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
                   ".txt": "text/plain; charset=utf-8", ".yaml": "text/plain; charset=utf-8"}
MAX_STRIP = 256  # frames per strip request
MAX_UPLOAD = 4 * 2**20  # bytes of an uploaded image (base64 decoded)


def _bad_item_errors() -> tuple[type[Exception], ...]:
    """What a damaged or foreign store, checkpoint or report raises: shown on its page, never a server crash."""
    from store import StoreError

    return UserError, StoreError, OSError, ValueError, KeyError


def _log_unless_user_error(err: BaseException) -> None:
    """Keep the traceback of what may be a bug (anything but a user's bad input or a bad store) in the log."""
    from store import StoreError

    if not isinstance(err, UserError | StoreError):
        traceback.print_exc(file=sys.stderr)


class Limiter:
    """At most `n` play sessions at once."""

    def __init__(self, n: int) -> None:
        self.n, self.active, self._lock = n, 0, threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.active >= self.n:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active = max(0, self.active - 1)


class App:
    """The pages and endpoints over one set of roots."""

    def __init__(self, roots: Roots, out: Path, max_sessions: int = 2, max_depth: int = 6) -> None:
        self.roots, self.out = roots, out
        self.catalog = K.Catalog(roots, max_depth=max_depth)
        self.sessions = Limiter(max_sessions)
        self._gen_lock = threading.Lock()
        self._gen_count = itertools.count(1 + max((int(p.stem[4:]) for p in out.glob("gen_*.mp4")
                                                   if p.stem[4:].isdigit()), default=0))
        self._samplers: OrderedDict[str, Any] = OrderedDict()
        self._digests: dict[tuple[str, int], str] = {}

    # ---- helpers ----
    def resolve_key(self, key: str, what: str) -> Path:
        """The path an item key names (`<root>/<rel>`, as the pages send it), through the roots' check."""
        root, _, rel = str(key).partition("/")
        return self.roots.resolve(_int(root, f"{what} root"), rel)

    def link(self, kind: str, item: K.Item) -> str:
        return url(f"/{kind}", str(item.root), item.rel)

    def label(self, item: K.Item) -> str:
        return f"{self.roots.dirs[item.root].name}/{item.rel}" if item.rel else self.roots.dirs[item.root].name

    def store_by_digest(self) -> dict[str, K.Item]:
        out = {}
        for it in self.catalog.items("store"):
            try:
                out.setdefault(json.loads((it.path / "zarr.json").read_text())["attributes"].get("digest"), it)
            except (OSError, ValueError, KeyError):
                continue
        return out

    # ---- datasets ----
    def index(self, request: Request) -> str:
        rows = []
        for it in self.catalog.items("store"):
            try:
                c = K.store_card(it.path)
                rows.append([f'<a href="{self.link("dataset", it)}">{e(self.label(it))}</a>', e(c["episodes"]),
                             c["frames"], ", ".join(c["resolutions"]), ", ".join(c["env_ids"]), c["policy"],
                             c["job_seed"], (c["digest"] or "")[:12]])
            except _bad_item_errors() as err:
                rows.append([f'<a href="{self.link("dataset", it)}">{e(self.label(it))}</a>',
                             f'<span class="bad">{e(err)}</span>', "", "", "", "", "", ""])
        roots = ", ".join(e(d) for d in self.roots.dirs)
        body = (f'<p>Stores under {roots}.</p>' +
                (table(["store", "episodes", "frames", "resolutions", "engines", "policy", "seed", "digest"], rows,
                       raw={0, 1}, cls="stores") if rows else "<p>No worldsim stores found.</p>"))
        return layout("Datasets", body, "/")

    def dataset(self, request: Request) -> str:
        root, rel = request.path_params["root"], request.path_params["path"]
        path = self.roots.resolve(root, rel)
        c = K.store_card(path)
        eps = K.store_episodes(path)
        gen = c["generator"]
        card = kv([("episodes", c["episodes"]), ("frames", c["frames"]), ("resolutions", ", ".join(c["resolutions"])),
                   ("fps", c["fps"]), ("engines", ", ".join(c["env_ids"])), ("engine kwargs", c["env_kwargs"]),
                   ("policy", c["policy"]), ("job seed", c["job_seed"]), ("steps per episode", c["steps"]),
                   ("episode seeds", " .. ".join(map(str, c["episode_seeds"]))), ("digest", c["digest"]),
                   ("made by", f"worldsim {gen.get('version')} (git {str(gen.get('git_sha'))[:12]})"),
                   ("licence", c["licence"]), ("actions", ", ".join(c["action_keys"])),
                   ("image views", ", ".join(c["views"]) or "frames")])
        ep_link = lambda i: url("/episode", str(root), rel, episode=i)  # noqa: E731
        rows = [[f'<a href="{ep_link(r["index"])}">{r["index"]}</a>', r["seed"], r["bucket"][2:], r["frames"],
                 r["caption"], r["policy"], r.get("motion"), r.get("diversity"), r.get("events"),
                 r.get("caption_words"), r["weight"]] for r in eps]
        episodes = table(["episode", "seed", "size", "frames", "caption", "policy", "motion", "diversity", "events",
                          "caption words", "weight"], rows, raw={0}, cls="episodes")
        card_md = (path / "DATASET.md").read_text()[:20000] if (path / "DATASET.md").is_file() else ""
        extra = f"<details><summary>DATASET.md</summary>{markdown(card_md)}</details>" if card_md else ""
        return layout(f"Dataset {self.roots.dirs[root].name}/{rel}", f"<h2>Card</h2>{card}{extra}"
                      f"<h2>Episodes</h2><p>Quality scores are means over the episode's segments.</p>{episodes}")

    def episode(self, request: Request) -> str:
        root, rel = request.path_params["root"], request.path_params["path"]
        path = self.roots.resolve(root, rel)
        index = _int(request.query_params.get("episode", "0"), "episode")
        view = K.episode_view(path, index)
        view["frames_url"] = url("/api/frames", str(root), rel)
        view["dataset_url"] = url("/dataset", str(root), rel)
        views = "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in ["frames", *view["views"]])
        body = (f'<p><a href="{e(view["dataset_url"])}">back to the dataset</a> &middot; seed {view["seed"]} &middot; '
                f'{view["length"]} frames at {view["width"]}x{view["height"]}, {view["fps"]} fps &middot; policy '
                f'{e(view["policy"])}</p><p class="caption">{e(view["caption"])}</p>'
                '<div class="player" id="player"><div class="screen"><canvas id="screen"></canvas>'
                '<div id="overlay" class="overlay"></div></div><div class="controls">'
                '<button id="play">pause</button><input type="range" id="scrub" min="0" value="0">'
                '<span id="frame-counter">frame 0</span> <label>speed <select id="speed"><option>0.25</option>'
                '<option>0.5</option><option selected>1</option><option>2</option><option>4</option></select></label>'
                f' <label>view <select id="view">{views}</select></label></div>'
                '<div id="segment" class="segment"></div><div id="reward" class="reward"></div>'
                '<div id="timeline" class="timeline"></div><h2>Events</h2><ol id="events" class="events"></ol></div>'
                + data_script("episode-data", view))
        return layout(f"Episode {index}", body, "/", scripts=True)

    def frames(self, request: Request) -> Response:
        root, rel = request.path_params["root"], request.path_params["path"]
        q = request.query_params
        index = _int(q.get("episode", "0"), "episode")
        start = _int(q.get("start", "0"), "start")
        count = min(MAX_STRIP, max(1, _int(q.get("count", "64"), "count")))
        arr = K.episode_frames(self.roots.resolve(root, rel), index, start, count, q.get("view", "frames"))
        if len(arr) == 0:
            raise NotFound(f"no frames from {start}")
        return Response(_strip(arr), media_type="image/png",
                        headers={"Cache-Control": "max-age=3600", "X-Frames": str(len(arr))})

    # ---- models ----
    def models(self, request: Request) -> str:
        rows = []
        for it in self.catalog.items("run"):
            try:
                s = K.run_summary(it.path)
                rows.append([f'<a href="{self.link("model", it)}">{e(self.label(it))}</a>', e(s["kind"]), s["step"],
                             f"{s['params'] / 1e6:.2f}M", ", ".join(x["url"] or "?" for x in s["stores"])[:120]])
            except _bad_item_errors() as err:
                rows.append([f'<a href="{self.link("model", it)}">{e(self.label(it))}</a>',
                             f'<span class="bad">{e(err)}</span>', "", "", ""])
        evals = [[f'<a href="{self.link("eval", it)}">{e(self.label(it))}</a>'] for it in self.catalog.items("eval")]
        body = (table(["run", "kind", "step", "parameters", "trained on"], rows, raw={0, 1}, cls="runs")
                if rows else "<p>No checkpoints found.</p>")
        body += "<h2>Evaluation reports</h2>" + (table(["report"], evals, raw={0}) if evals else "<p>None.</p>")
        return layout("Models", body, "/models")

    def model(self, request: Request) -> str:
        root, rel = request.path_params["root"], request.path_params["path"]
        path = self.roots.resolve(root, rel)
        s = K.run_summary(path)
        curves = K.metrics_curves(path)
        charts = "".join(svg_chart(k, v, log=k in ("loss", "lr", "grad_norm")) for k, v in curves.items()
                         if k not in ("tokens_per_s",)) or "<p>No metrics.jsonl.</p>"
        known = self.store_by_digest()
        stores = []
        for st in s["stores"]:
            it = known.get(st["digest"])
            name = f'<a href="{self.link("dataset", it)}">{e(self.label(it))}</a>' if it else \
                f'{e(st["url"])} <span class="muted">(not under the served folders)</span>'
            stores.append([name, (st["digest"] or "")[:16], ", ".join(st["env_ids"]), _span(st["episodes"])])
        facts = [("kind", s["kind"]), ("step", s["step"]), ("parameters", f"{s['params']:,}"),
                 ("checkpoint", s["checkpoint"]), ("digest", self._digest(path)),
                 ("checkpoints", ", ".join(s["checkpoints"]))]
        if s["kind"] == "dit":
            facts += [("frames", f"{s['frames']} at {s['width']}x{s['height']}, {s['fps']} fps"),
                      ("actions", ", ".join(s["action_keys"])), ("DiT", s["model"]), ("VAE", s["vae"]),
                      ("reward model", "yes" if s["reward"] else "no (worldsim train-reward)")]
        elif s["kind"] == "vae":
            facts += [("VAE", s["vae"]), ("held-out PSNR (dB)", s["val_psnr"])]
        evals = [it for it in self.catalog.items("eval") if self._eval_of(it.path, path)]
        ev = "".join(f'<li><a href="{self.link("eval", it)}">{e(self.label(it))}</a></li>' for it in evals)
        play = (f'<p><a class="button" href="{url("/play", ckpt=f"{root}/{rel}")}">play it beside the engine</a> '
                f'<a class="button" href="{url("/generate", ckpt=f"{root}/{rel}")}">generate</a></p>'
                if s["kind"] == "dit" else "")
        body = (play + kv(facts) + "<h2>Training curves</h2>" + f'<div class="charts">{charts}</div>' +
                "<h2>Trained on</h2>" + (table(["store", "digest", "engines", "episodes"], stores, raw={0})
                                         if stores else "<p>No store recorded.</p>") +
                "<h2>Evaluation reports</h2>" + (f"<ul>{ev}</ul>" if ev else "<p>None found under the roots.</p>") +
                f"<h2>Config</h2><details><summary>resolved training config</summary>{pre_json(s['config'])}</details>")
        return layout(f"Model {self.roots.dirs[root].name}/{rel}", body, "/models")

    def _eval_of(self, report: Path, run: Path) -> bool:
        """Whether the report folder `report` scores `run`: its eval.json names one of the run's checkpoints (by
        path, or by the digest of the run's latest one: a copied run still finds its reports), or it is a demo /
        recipe folder that holds the run."""
        if not (report / "eval.json").is_file():
            return report in run.parents
        try:
            ck = json.loads((report / "eval.json").read_text()).get("checkpoint", {})
            p = Path(str(ck.get("path", ""))).resolve()
        except (OSError, ValueError, AttributeError):
            return False
        return p == run or run in p.parents or (bool(ck.get("digest")) and ck.get("digest") == self._digest(run))

    def _digest(self, run: Path) -> str | None:
        """The digest of a run's latest checkpoint, cached by the checkpoint folder and its meta.json's mtime."""
        from worldsim.model import checkpoint as C

        try:
            ck = C.resolve(run)
            key = (str(ck), (ck / "meta.json").stat().st_mtime_ns)
        except (UserError, OSError):
            return None
        if key not in self._digests:
            self._digests[key] = C.digest(ck)
        return self._digests[key]

    def evaluation(self, request: Request) -> str:
        root, rel = request.path_params["root"], request.path_params["path"]
        path = self.roots.resolve(root, rel)
        ev = K.eval_summary(path)
        file_url = lambda name: url("/file", str(root), f"{rel}/{name}" if rel else name)  # noqa: E731
        image = lambda src: file_url(src) if "/" not in src.strip("./") and not src.startswith(("/", "http")) \
            else None  # noqa: E731
        plots = "".join(f'<img class="plot" src="{e(file_url(p))}" alt="{e(p)}">' for p in ev["plots"])
        videos = "".join(f'<figure><video controls loop muted src="{e(file_url(v))}"></video><figcaption>'
                         f'<a href="{e(file_url(v))}">{e(v)}</a> (engine | model)</figcaption></figure>'
                         for v in ev["videos"])
        ck = ev["data"].get("checkpoint") if isinstance(ev["data"].get("checkpoint"), dict) else {}
        runs = [it for it in self.catalog.items("run") if self._eval_of(path, it.path)]
        links = " ".join(f'<a href="{self.link("model", it)}">{e(self.label(it))}</a>' for it in runs)
        head = (f'<p>checkpoint {e(ck.get("path"))} (step {e(ck.get("step"))})</p>' if ck else "") + \
            (f"<p>model pages: {links}</p>" if links else "")
        body = head + f'<div class="plots">{plots}</div>' + markdown(ev["report"], image) + \
            (f'<h2>Side by side</h2><div class="videos">{videos}</div>' if videos else "")
        return layout(f"Evaluation {self.roots.dirs[root].name}/{rel}", body, "/models")

    def file(self, request: Request) -> Response:
        root, rel = request.path_params["root"], request.path_params["path"]
        path = self.roots.resolve(root, rel)
        kind = SERVED_SUFFIXES.get(path.suffix.lower())
        if not path.is_file() or kind is None:
            raise Forbidden(f"{rel!r} is not a file the app serves")
        return FileResponse(path, media_type=kind)

    # ---- play ----
    def _models(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(key, label, meta) of every world-model run under the roots."""
        from worldsim.model import checkpoint as C

        out = []
        for it in self.catalog.items("run"):
            try:
                meta = C.load_meta(C.resolve(it.path))
            except (OSError, UserError):
                continue
            if meta.get("kind") == "dit":
                out.append((it.key, self.label(it), meta))
        return out

    def _model_options(self, want: str) -> str:
        return "".join(f'<option value="{e(k)}"{" selected" if k == want else ""}>{e(v)}</option>'
                       for k, v, _ in self._models())

    def play(self, request: Request) -> str:
        models = self._model_options(request.query_params.get("ckpt", ""))
        tasks = engine_tasks()
        body = ('<form id="play-form" class="row"><label>engine <select id="engine">'
                + "".join(f"<option>{k}</option>" for k in ENGINES) +
                '</select></label><label>task <select id="task"></select></label>'
                '<label>seed <input id="seed" type="number" value="0" min="0"></label>'
                f'<label>model <select id="ckpt"><option value="">none (engine only)</option>{models}</select></label>'
                '<label>Euler steps <input id="steps" type="number" min="1" max="16" placeholder="default"></label>'
                '<button id="start" type="submit">start</button></form>'
                '<p id="controls-help" class="muted"></p><div id="play-error"></div>'
                '<div class="panes"><figure><figcaption>engine</figcaption><canvas id="engine-view" tabindex="0">'
                '</canvas><div class="stats" id="engine-stats"></div></figure>'
                '<figure id="dream-pane"><figcaption>dream (the model)</figcaption><canvas id="dream-view" '
                'tabindex="0"></canvas><div class="stats" id="dream-stats"></div></figure></div>'
                '<p><button id="resync" disabled>reset the dream from the engine frame</button> '
                '<button id="new-episode" disabled>new episode</button> <span id="client-fps"></span></p>'
                + data_script("play-data", {"tasks": tasks, "games": {k: _games_of(m) for k, _, m in self._models()
                                                                      if _games_of(m)}}))
        return layout("Play", body, "/play", scripts=True)

    async def play_socket(self, ws: WebSocket) -> None:
        await ws.accept()
        if not self.sessions.acquire():
            await ws.send_json({"type": "error", "message": f"{self.sessions.n} play sessions are running, the "
                                f"limit of this server (worldsim serve max_sessions={self.sessions.n}); close one "
                                "or try again later"})
            await ws.close(code=1013)
            return
        session: PlaySession | None = None
        try:
            session = self._session(await ws.receive_json())
            ready = await asyncio.wrap_future(session.run(session.open))
            await ws.send_json({"type": "ready", **ready})
            await self._send_frames(ws, session)
            while True:
                msg = await ws.receive_json()
                kind = msg.get("type") if isinstance(msg, dict) else None
                if kind == "step":
                    keys, buttons, mouse, hotbar = _step_input(msg)
                    await asyncio.wrap_future(session.run(session.step, keys, buttons, mouse, hotbar))
                elif kind == "resync":
                    await asyncio.wrap_future(session.run(session.resync))
                elif kind == "reset":
                    await asyncio.wrap_future(session.run(session.new_episode))
                else:
                    raise InputError(f"unknown message type {kind!r} (step, resync, reset)")
                await self._send_frames(ws, session)
        except WebSocketDisconnect:
            pass
        except (*_bad_item_errors(), Forbidden, NotFound) as err:
            _log_unless_user_error(err)
            await _try_send_error(ws, err)
        except Exception as err:  # a bug: log it with its traceback, tell the page, keep serving
            traceback.print_exc(file=sys.stderr)
            await _try_send_error(ws, err)
        finally:  # on a thread of its own: a cancelled handler (the client went away) still frees its slot
            threading.Thread(target=self._end, args=(session,), daemon=True).start()

    def _end(self, session: PlaySession | None) -> None:
        try:
            if session is not None:
                session.shutdown()
        finally:
            self.sessions.release()

    def _session(self, msg: Any) -> PlaySession:
        if not isinstance(msg, dict) or msg.get("type") != "start":
            raise InputError("the first message must be {'type': 'start', 'engine': ..., ...}")
        ckpt = self.resolve_key(msg["ckpt"], "ckpt") if msg.get("ckpt") else None
        engine = str(msg.get("engine") or "voxel")
        if engine not in ENGINES and (ckpt is None or engine not in _games_of(_meta(ckpt))):
            raise InputError(f"unknown engine {engine!r}: voxel, physics, or a game the chosen model learned")
        steps = msg.get("steps")
        steps = None if steps in (None, "") else max(1, min(16, _int(str(steps), "steps")))
        seed = max(0, _int(str(msg.get("seed", 0)), "seed"))
        task = str(msg.get("task") or "") or None
        size = tuple(max(32, min(640, _int(str(msg.get(k, d)), k))) for k, d in (("width", 160), ("height", 120)))
        return PlaySession(engine=engine, seed=seed, task=task if engine in ENGINES else None, ckpt=ckpt,
                           dream_steps=steps, size=size)

    @staticmethod
    async def _send_frames(ws: WebSocket, session: PlaySession) -> None:
        await ws.send_json({"type": "frame", "stats": session.stats()})
        await ws.send_bytes(session.frames())

    # ---- generate ----
    def generate_page(self, request: Request) -> str:
        models = self._model_options(request.query_params.get("ckpt", ""))
        stores = "".join(f'<option value="{it.key}">{e(self.label(it))}</option>' for it in self.catalog.items("store"))
        body = ('<form id="gen-form" class="grid">'
                f'<label>model <select id="g-ckpt">{models}</select></label>'
                '<label>mode <select id="g-mode"><option value="t2v">text to video</option>'
                '<option value="i2v">image to video</option></select></label>'
                '<label class="wide">prompt <input id="g-prompt" value="plains at noon, walking"></label>'
                '<label>frames <input id="g-frames" type="number" value="16" min="1" max="64"></label>'
                '<label>Euler steps <input id="g-steps" type="number" value="8" min="1" max="50"></label>'
                '<label>seed <input id="g-seed" type="number" value="0" min="0"></label>'
                '<fieldset id="g-image"><legend>image (image to video)</legend>'
                '<label>a file <input id="g-file" type="file" accept="image/png,image/jpeg"></label>'
                f'<label>or a stored frame <select id="g-store"><option value="">-</option>{stores}</select></label>'
                '<label>episode <input id="g-episode" type="number" value="0" min="0"></label>'
                '<label>frame <input id="g-frame" type="number" value="0" min="0"></label></fieldset>'
                '<button id="g-go" type="submit">generate</button></form><div id="g-error"></div>'
                '<div id="g-result" class="result" hidden><canvas id="g-view"></canvas>'
                '<p><a id="g-video" href="#">MP4</a> &middot; <span id="g-counter"></span></p>'
                '<h2>Provenance</h2><table class="kv" id="g-provenance"></table></div>')
        if not models:
            body = "<p>No world-model checkpoints under the served folders.</p>"
        return layout("Generate", body, "/generate", scripts=True)

    async def generate(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise InputError("the request body must be JSON") from None
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        result = await asyncio.to_thread(self._generate, body)
        return JSONResponse(result)

    def _sampler(self, path: Path) -> Any:
        from worldsim.model.sampler import WorldSampler

        key = str(path)
        if key not in self._samplers:
            self._samplers[key] = WorldSampler.load(path)
            while len(self._samplers) > 2:
                self._samplers.popitem(last=False)
        self._samplers.move_to_end(key)
        return self._samplers[key]

    def _generate(self, body: dict[str, Any]) -> dict[str, Any]:
        path = self.resolve_key(body.get("ckpt") or "", "ckpt")
        mode = str(body.get("mode", "t2v"))
        if mode not in ("t2v", "i2v"):
            raise InputError(f"mode must be t2v or i2v, got {mode!r}")
        frames = max(1, min(64, _int(str(body.get("frames", 16)), "frames")))
        steps = max(1, min(50, _int(str(body.get("steps", 8)), "steps")))
        seed = max(0, _int(str(body.get("seed", 0)), "seed"))
        prompt = str(body.get("prompt", ""))[:500]
        with self._gen_lock:
            s = self._sampler(path)
            prompt = prompt or (s.example_prompt() if mode == "t2v" else "")
            s.check_prompt(prompt)
            extra: dict[str, Any] = {"mode": mode, "prompt": prompt, "seed": seed, "steps": steps, "length": frames}
            if mode == "t2v":
                video = s.t2v(prompt, frames=frames, steps=steps, seed=seed)
            else:
                image, source = self._image(body, s.width, s.height)
                extra["image"] = source
                video = s.i2v(image, frames, prompt, steps=steps, seed=seed)
            n = next(self._gen_count)
            mp4 = self.out / f"gen_{n:04d}.mp4"
            s.write_video(video, mp4, **extra)
            (self.out / f"gen_{n:04d}.png").write_bytes(_strip(video))
        prov = {**s.provenance(**extra), "checkpoint_path": str(path)}
        return {"video": f"/generated/{mp4.name}", "strip": f"/generated/gen_{n:04d}.png",
                "frames": int(len(video)), "width": int(video.shape[2]), "height": int(video.shape[1]),
                "fps": int(s.fps or 20), "provenance": prov}

    def _image(self, body: dict[str, Any], width: int, height: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The first frame of image to video: an uploaded PNG / JPEG (a data URL), or a frame of a served store;
        resized to the model's size when it is not (said in the provenance)."""
        from PIL import Image

        if body.get("image"):
            text = str(body["image"])
            b64 = text.split(",", 1)[1] if text.startswith("data:") else text
            try:
                raw = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise InputError("image is not base64 data") from None
            if len(raw) > MAX_UPLOAD:
                raise InputError(f"image is {len(raw) / 2**20:.1f} MB; the limit is {MAX_UPLOAD // 2**20} MB")
            try:
                img = Image.open(io.BytesIO(raw))
                if img.format not in ("PNG", "JPEG"):
                    raise InputError(f"image must be PNG or JPEG, got {img.format}")
                arr = np.asarray(img.convert("RGB"))
            except (OSError, Image.DecompressionBombError) as err:
                raise InputError(f"image cannot be read: {err}") from None
            source: dict[str, Any] = {"upload": True, "size": [int(arr.shape[1]), int(arr.shape[0])]}
        else:
            key = str(body.get("store") or "")
            if not key:
                raise InputError("image to video needs an image file or a stored frame (store, episode, frame)")
            spath = self.resolve_key(key, "store")
            episode, frame = _int(str(body.get("episode", 0)), "episode"), _int(str(body.get("frame", 0)), "frame")
            got = K.episode_frames(spath, episode, frame, 1)
            if len(got) == 0:
                raise InputError(f"episode {episode} has no frame {frame}")
            arr = got[0]
            digest = json.loads((spath / "zarr.json").read_text())["attributes"].get("digest")
            source = {"store_digest": digest, "episode": episode, "frame": frame,
                      "size": [int(arr.shape[1]), int(arr.shape[0])]}
        if arr.shape[:2] != (height, width):
            arr = np.asarray(Image.fromarray(arr).resize((width, height), Image.BICUBIC))
            source["resized_to"] = [width, height]
        return arr, source

    def generated(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = self.out / name
        if not _GEN_NAME(name) or not path.is_file():
            raise NotFound(f"no generated file {name!r}")
        return FileResponse(path, media_type=SERVED_SUFFIXES[path.suffix])

    def api_catalog(self, request: Request) -> Response:
        return JSONResponse({k: [i.key for i in self.catalog.items(k)] for k in ("store", "run", "eval")})


def _GEN_NAME(name: str) -> bool:
    import re

    return re.fullmatch(r"gen_\d{4,}\.(mp4|png|mp4\.json)", name) is not None


def _meta(run: Path) -> dict[str, Any]:
    from worldsim.model import checkpoint as C

    return C.load_meta(C.resolve(run))


def _games_of(meta: dict[str, Any]) -> list[str]:
    """The other games (not worldsim's engines) a world model learned: playable beside it."""
    return sorted({i for s in meta.get("stores", []) for i in s.get("env_ids", []) if not i.startswith("worldsim/")})


def _span(indices: Any) -> str:
    if not isinstance(indices, list) or not indices:
        return str(indices or "")
    return f"{len(indices)} ({min(indices)}..{max(indices)})"


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an integer, got {text!r}") from None


def _step_input(msg: dict[str, Any]) -> tuple[list[str], list[int], tuple[float, float], int]:
    keys = [str(k)[:16].lower() for k in (msg.get("keys") or [])[:32]]
    buttons = [int(b) for b in (msg.get("buttons") or [])[:3] if isinstance(b, int | float) and b in (0, 1, 2)]
    mouse = msg.get("mouse") or [0, 0]
    try:
        dx, dy = (float(mouse[0]), float(mouse[1]))
    except (TypeError, ValueError, IndexError):
        raise InputError("mouse must be [dx, dy]") from None
    dx, dy = (v if math.isfinite(v) else 0.0 for v in (dx, dy))
    hotbar = msg.get("hotbar") or 0
    hotbar = int(hotbar) if isinstance(hotbar, int | float) and 0 <= hotbar <= 9 else 0
    return keys, buttons, (max(-2000.0, min(2000.0, dx)), max(-2000.0, min(2000.0, dy))), hotbar


async def _try_send_error(ws: WebSocket, err: BaseException) -> None:
    try:
        await ws.send_json({"type": "error", "message": str(err).strip().splitlines()[0] if str(err).strip()
                            else type(err).__name__})
        await ws.close(code=1011)
    except Exception:  # the client is gone already
        pass


def _strip(frames: np.ndarray) -> bytes:
    """Frames (N, H, W, 3) stacked vertically in one PNG: what the pages' players cut frames from."""
    from PIL import Image

    buf = io.BytesIO()
    arr = np.ascontiguousarray(frames.reshape(-1, *frames.shape[2:]), dtype=np.uint8)
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _status(err: BaseException) -> int:
    if isinstance(err, Forbidden):
        return 403
    if isinstance(err, NotFound):
        return 404
    return 422


def _html_route(app: App, fn: Any) -> Any:
    async def handler(request: Request) -> Response:
        try:
            result = await asyncio.to_thread(fn, request)
            return result if isinstance(result, Response) else HTMLResponse(result)
        except (Forbidden, NotFound) as err:
            return HTMLResponse(layout("Refused" if isinstance(err, Forbidden) else "Not found",
                                       error_box(str(err))), status_code=_status(err))
        except _bad_item_errors() as err:
            _log_unless_user_error(err)
            return HTMLResponse(layout("Cannot show this", error_box(f"{type(err).__name__}: {err}")),
                                status_code=422)
        except Exception as err:  # a bug in the app: keep serving, log the traceback, say so on the page
            traceback.print_exc(file=sys.stderr)
            return HTMLResponse(layout("Server error", error_box(f"{type(err).__name__}: {err} (a bug in worldsim "
                                                                 "serve; the traceback is in the server's log)")),
                                status_code=500)
    return handler


def _json_route(fn: Any) -> Any:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except (Forbidden, NotFound) as err:
            return JSONResponse({"error": str(err)}, status_code=_status(err))
        except _bad_item_errors() as err:
            _log_unless_user_error(err)
            return JSONResponse({"error": str(err).strip().splitlines()[0] if str(err).strip()
                                 else type(err).__name__}, status_code=422)
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            return JSONResponse({"error": f"{type(err).__name__}: {err}"}, status_code=500)
    return handler


def create_app(roots: list[str] | Roots, out: str | Path | None = None, max_sessions: int = 2,
               max_depth: int = 6) -> Starlette:
    """The app over `roots` (folders it may read); generated videos go to `out` (default: a new temporary folder)."""
    import tempfile

    r = roots if isinstance(roots, Roots) else Roots.of(list(roots))
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="worldsim-serve-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    a = App(r, out_dir, max_sessions=max_sessions, max_depth=max_depth)
    pages = {"/": a.index, "/models": a.models, "/play": a.play, "/generate": a.generate_page,
             "/dataset/{root:int}/{path:path}": a.dataset, "/episode/{root:int}/{path:path}": a.episode,
             "/model/{root:int}/{path:path}": a.model, "/eval/{root:int}/{path:path}": a.evaluation,
             "/api/frames/{root:int}/{path:path}": a.frames, "/file/{root:int}/{path:path}": a.file,
             "/generated/{name}": a.generated, "/api/catalog": a.api_catalog}
    routes: list[Any] = [Route(p, _html_route(a, fn)) for p, fn in pages.items()]
    routes += [Route("/api/generate", _json_route(a.generate), methods=["POST"]),
               WebSocketRoute("/ws/play", a.play_socket), Mount("/static", StaticFiles(directory=STATIC))]
    app = Starlette(routes=routes)
    app.state.worldsim = a
    return app


def serve_in_thread(app: Starlette, host: str = "127.0.0.1") -> tuple[str, Any]:
    """Run `app` with uvicorn on a free port of `host` in a daemon thread (tests, benchmarks, screenshots); returns
    its base URL and the server (`server.should_exit = True` stops it)."""
    import socket
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", ws="websockets-sansio"))
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"the server on {host}:{port} did not start within 30 s")
    return f"http://{host}:{port}", server
