"""Run a generate job into a store: create or resume, record episodes on workers, finalize, write the card.

Executors: `process` (a local process pool, the default) or `ray` (one Ray actor per worker, on a local instance or a
cluster; needs `pip install "worldsim[ray]"`). Either way workers never share an array: each episode is written into
its own staging group by the worker that recorded it, and becomes visible only when complete; the driver finalizes.
Killing the job at any moment (SIGKILL included) loses at most the episodes in flight; running the same job again,
with either executor, records only what is missing and gives the same digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import store as S
from datagen.rollout import Job, make_env, record_episode

_WORKER: dict[str, Any] = {}
EXECUTORS = ("process", "ray")
RAY_INSTALL = 'executor=ray needs Ray, which is not installed: pip install "worldsim[ray]"'


class ExecutorError(Exception):
    """The chosen executor cannot run this job (unknown name, Ray missing, a store URL workers cannot share)."""


def _version() -> str:
    """The installed worldsim version, read from the package metadata (datagen sits below the model layer)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("worldsim")
    except PackageNotFoundError:
        return "unknown"


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def job_key(job: Job) -> str:
    return hashlib.sha256(json.dumps(job.content_key(), sort_keys=True).encode()).hexdigest()[:16]


def _init_worker(job: Job, url: str, env: Any = None) -> None:
    _WORKER["env"] = env if env is not None else make_env(job)
    _WORKER["job"], _WORKER["root"] = job, S.open_root(url, "r+")


def _run_one(index: int) -> tuple[int, int]:
    ep = record_episode(_WORKER["env"], _WORKER["job"], index)
    S.write_staged_episode(_WORKER["root"], ep)
    return index, len(ep.frames)


def generator_info() -> dict[str, str]:
    """What made a store: recorded in its attributes and card."""
    return {"name": "worldsim", "version": _version(), "git_sha": _git_sha()}


def prepare(job: Job, url: str, env: Any = None) -> tuple[Any, list[int]]:
    """Open or create the store of a job. Returns (root, episodes still to record); raises StoreError when `url`
    holds something else (another job's store, or a non-store directory). A new store reads the action spec and
    fps from `env` (or from a temporary env: it also fails early on bad env settings)."""

    def attrs() -> dict[str, Any]:
        probe = env if env is not None else make_env(job)
        spec, fps = json.loads(probe.action_spec_json()), int(probe.metadata.get("render_fps", 20))
        # another game: its package, version, ROM / scenario, kwargs, and whether it replays deterministically
        source = {"game": probe.provenance()} if hasattr(probe, "provenance") else {}
        if env is None:
            probe.close()
        licence = S.LICENCE if not source else (f"the game's own ({source['game']['package']}, {job.env_id}): "
                                                 "third-party content, not worldsim's; check it before sharing")
        return {"generator": generator_info(), "env_ids": [job.env_id], "action_spec": spec, "fps": fps, **source,
                "licence": licence,
                "alignment": "actions[t] is taken after observing frames[t]; rewards[t] and terminated[t] result "
                             "from it"}

    root = S.create_or_resume(url, job_key(job), job.content_key(), attrs)
    if root.attrs.get("finalized"):
        return root, []
    done = S.staged_episodes(root)
    return root, [i for i in range(job.episodes) if i not in done]


def run(job: Job, url: str, workers: int = 1, progress: Callable[[int, int], None] | None = None,
        executor: str = "process", ray_address: str | None = None, wait: bool = False) -> dict[str, Any]:
    """Record the missing episodes of `job` into `url` and finalize. Returns the root attributes.

    Args:
        job: what to record.
        url: the store (a path or an fsspec URL); created, resumed, or returned as it is when finalized.
        workers: processes or Ray actors, one env (and GL context) each.
        progress: called with (episodes, frames) after each recorded episode.
        executor: "process" (a local process pool) or "ray" (Ray actors; the store must be a path or URL that
            every worker reaches, so not memory://).
        ray_address: the Ray cluster for executor="ray" ("auto", "ray://host:10001", ...); None starts a local
            instance (or uses the one this process already connected to).
        wait: another run writing `url` (store.writer.writer_lock): wait for it instead of refusing.

    Raises:
        ExecutorError: an unknown executor, Ray not installed, or a memory:// store with executor="ray"; raised
            before the store is touched.
        StoreError: `url` holds something else, cannot be created, or another run is writing it.
    """
    if executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if executor == "ray":
        _import_ray()
        if url.startswith("memory://"):
            raise ExecutorError(f"executor=ray cannot write {url}: a memory:// store lives in one process; "
                                f"use a path or file:// URL that every Ray worker can reach")
    if job.seed < 0:
        raise ValueError(f"seed must be >= 0, got {job.seed}")
    fresh = not _exists(url)
    if fresh:
        # another game at its native size: its frames are not known before it runs; 256 x 256 stands for them
        S.check_space(url, job.episodes * (job.steps + 1), job.height or 256, job.width or 256)
    with S.writer_lock(url, wait):
        try:
            return _record(job, url, workers, progress, executor, ray_address)
        except BaseException:
            if fresh:  # a failure before any episode was kept leaves `out` as the user left it
                S.discard_unused(url)
            raise


def _exists(url: str) -> bool:
    """Whether `url` already holds something (a local folder that is not empty; any non-local store counts as
    existing, so nothing there is ever removed)."""
    path = S.local_path(url)
    if path is None:
        return True
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _record(job: Job, url: str, workers: int, progress: Callable[[int, int], None] | None, executor: str,
            ray_address: str | None) -> dict[str, Any]:
    """`run` under the store's writer lock."""
    local = executor == "process" and (workers <= 1 or url.startswith("memory://"))
    # records here, or (workers elsewhere) checks the env settings here, where a bad one is a plain error, and
    # gives a new store its action spec and fps
    env = make_env(job)
    root, todo = prepare(job, url, env)
    if todo and job.policy == "ppo" and job.ppo_state is None:  # the data policy, trained once for all workers
        from datagen.games import train_data_policy

        job = dataclasses.replace(job, ppo_state=train_data_policy(job))
    if not local:
        if todo:
            env.reset(seed=job.seed)  # engines build their renderer on the first reset
        env.close()
        env = None
    if root.attrs.get("finalized"):
        if env is not None:
            env.close()
        if "staging" in root:  # killed after finalizing but before cleaning up
            del root["staging"]
        write_card(root, url, job)  # killed before the card was written: write it (the same text again otherwise)
        return dict(root.attrs)
    if executor == "ray" and todo:
        _run_ray(job, url, todo, workers, ray_address, progress)
    elif local or len(todo) == 1:
        _init_worker(job, url, env)
        _WORKER["root"] = root
        for i in todo:
            _, n = _run_one(i)
            if progress:
                progress(1, n)
    elif todo:
        ctx = mp.get_context("spawn")  # a fresh process per worker: one GL context each, nothing inherited
        pool = ctx.Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(job, url))
        try:
            for _, n in pool.imap_unordered(_run_one, todo):
                if progress:
                    progress(1, n)
            pool.close()  # a clean shutdown: the workers exit on their own
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    S.finalize(root, job.episodes)
    write_card(root, url, job)
    return dict(root.attrs)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(RAY_INSTALL) from None
    return ray


class _Recorder:
    """A Ray actor: one env (and GL context) that records episodes into the store's staging groups."""

    def __init__(self, job: Job, url: str) -> None:
        _init_worker(job, url)

    def record(self, index: int) -> tuple[int, int]:
        return _run_one(index)


def _run_ray(job: Job, url: str, todo: list[int], workers: int, address: str | None,
             progress: Callable[[int, int], None] | None) -> None:
    """Record `todo` on `workers` Ray actors, each handed its next episode when it finishes one (like imap)."""
    ray = _import_ray()
    from ray.util import ActorPool

    if "://" not in url:  # Ray workers may not share the driver's working directory
        url = str(Path(url).resolve())
    started = not ray.is_initialized()
    if started:
        local = {} if address else {"include_dashboard": False}  # a local instance needs no dashboard
        ray.init(address=address or None, logging_level="warning", **local)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(workers, len(todo), cpus))  # more actors than CPUs would wait for a slot forever
        recorder = ray.remote(num_cpus=1)(_Recorder)
        actors = [recorder.remote(job, url) for _ in range(n)]
        try:
            for _, frames in ActorPool(actors).map_unordered(lambda a, i: a.record.remote(i), todo):
                if progress:
                    progress(1, frames)
        finally:
            for a in actors:
                ray.kill(a)
    finally:
        if started:
            ray.shutdown()


def _sources(a: Any, job: Job) -> str:
    game = a.get("game")
    if not game:
        return f"- sources: the worldsim engine `{job.env_id}` only; licence: {a['licence']}"
    extra = "".join(f", {k} `{game[k]}`" for k in ("rom", "scenario") if game.get(k))
    return "\n".join([
        f"- sources: the game `{job.env_id}` (package {game['package']} {game['package_version']}{extra}), kwargs "
        f"`{json.dumps(game['kwargs'], sort_keys=True)}`; licence: {a['licence']}",
        f"- frames: the game's {game['observation']}; deterministic replay: {game['deterministic']} "
        f"({game['determinism']})",
        "- known per step: frames, actions (the game's own space, store/spaces.py), rewards, terminated, truncated, "
        "the game's plain `info` data as events (rewards, lives lost); captions say only the game, the step count, "
        "rewards and lives lost (nothing about what the frames show)"])


def write_card(root: Any, url: str, job: Job) -> None:
    """DATASET.md beside the arrays: sources, generator, config, seeds, licence, statistics."""
    import fsspec

    a = root.attrs
    st = a["stats"]
    lines = [
        f"# worldsim dataset: {job.env_id}", "",
        f"- episodes: {st['episodes']}, frames: {st['frames']}, resolutions: {', '.join(st['resolutions'])}, "
        f"fps: {a['fps']}",
        f"- content digest (sha256 of all arrays and texts): `{a['digest']}`",
        f"- generator: worldsim {a['generator']['version']} (git {a['generator']['git_sha']})",
        _sources(a, job),
        f"- episode seeds: derived from job seed {job.seed} (`datagen.rollout.episode_seed(seed, index)`)",
        f"- alignment: {a['alignment']}", "",
        "## Job (the resolved config; the same job reproduces the same digest)", "", "```json",
        json.dumps(a["job"], indent=2, sort_keys=True), "```", "",
        "## Action statistics (fraction of steps each key is non-zero; mean and std)", "",
        "| key | non-zero | mean | std |", "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['nonzero']} | {v['mean']} | {v['std']} |" for k, v in st["actions"].items()]
    lines += ["", "Schema: docs/dataset.md in the worldsim repository.", ""]
    with fsspec.open(url.rstrip("/") + "/DATASET.md", "w") as f:
        f.write("\n".join(lines))

