"""Data generation: schema round trip, action alignment, digest equality, resume after SIGKILL, validate errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import store as S
from datagen.captions import BIOME_PHRASES, TIME_PHRASES, expand_prompt
from datagen.job import run
from datagen.rollout import Job, episode_seed, make_env

VOXEL = dict(env_id="worldsim/Voxel-v0", env_kwargs={"task": "explore"}, width=32, height=24, steps=30)


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_round_trip_alignment_and_captions(tmp_path):
    job = Job(**VOXEL, episodes=2, seed=3, policy="explorer")
    attrs = run(job, str(tmp_path / "s"), workers=1)
    root = S.open_root(str(tmp_path / "s"), "r")
    b = root["b_24x32"]
    ends = b["meta/episode_ends"][...]
    frames, actions = b["data/frames"][...], b["data/actions"][...]
    assert frames.shape == (ends[-1], 24, 32, 3) and attrs["stats"]["episodes"] == 2
    # Alignment: replaying actions[t] from frames[t] reproduces frames[t + 1] exactly.
    from envs.voxel.actions import from_flat

    env = make_env(job)
    obs, _ = env.reset(seed=episode_seed(3, 0))
    assert np.array_equal(obs, frames[0])
    for t in range(ends[0] - 1):
        obs, *_ = env.step(from_flat(actions[t]))
        assert np.array_equal(obs, frames[t + 1]), t
    assert b["data/is_last"][ends[0] - 1] and not b["data/is_last"][: ends[0] - 1].any()
    # Captions never contradict the ground truth: the setting named is the biome and time of the segment start.
    dense = S.read_texts(b, "segment_dense")
    seg = b["meta/segment_bounds"][...]
    env.reset(seed=episode_seed(3, 0))
    _, info = env.reset(seed=episode_seed(3, 0))
    assert any(p in dense[0] for p in BIOME_PHRASES[info["biome"]])
    assert any(p in dense[0] for p in TIME_PHRASES[info["day_phase"]])
    assert len(dense) == len(seg) == b["meta/sample_weight"].shape[0]
    assert abs(float(b["meta/sample_weight"][...].mean()) - 1.0) < 1e-5
    assert (tmp_path / "s" / "DATASET.md").read_text().count(attrs["digest"]) == 1


def test_digest_is_the_same_with_one_or_two_workers(tmp_path):
    job = Job(**VOXEL, episodes=3, seed=1)
    d1 = run(job, str(tmp_path / "a"), workers=1)["digest"]
    d2 = run(job, str(tmp_path / "b"), workers=2)["digest"]
    assert d1 == d2
    assert S.validate(str(tmp_path / "b"))["digest"] == d1


def test_memory_url_and_physics(tmp_path):
    job = Job(env_id="worldsim/Physics-v0", env_kwargs={"task": "observe"}, width=32, height=32, steps=20,
              episodes=2, seed=0)
    attrs = run(job, "memory://physics-test", workers=2)
    summary = S.validate("memory://physics-test")
    assert summary["episodes"] == 2 and summary["digest"] == attrs["digest"]
    assert attrs["action_spec"]["flat_keys"] == ["push_x", "push_y"]


def test_read_episode_returns_one_episodes_rows_and_texts():
    job = Job(**{**VOXEL, "steps": 12}, episodes=2, seed=2)
    run(job, "memory://read-episode", workers=1)
    b = S.open_root("memory://read-episode", "r")["b_24x32"]
    ends = b["meta/episode_ends"][...]
    ep = S.read_episode("memory://read-episode", 1)
    assert np.array_equal(ep["frames"], b["data/frames"][ends[0] : ends[1]])
    assert np.array_equal(ep["actions"], b["data/actions"][ends[0] : ends[1]]) and ep["is_last"][-1]
    assert ep["seed"] == episode_seed(2, 1) and ep["action_keys"][0] == "forward" and ep["fps"] == 20
    assert ep["segments"][0, 0] == 0 and ep["segments"][-1, 1] == len(ep["frames"])
    assert len(ep["segment_dense"]) == len(ep["segment_short"]) == len(ep["segments"])
    assert ep["episode_short"] == S.read_texts(b, "episode_short")[1] and isinstance(ep["events"], list)
    with pytest.raises(S.StoreError, match=r"episode 5 is not in .*holds episodes 0\.\.1"):
        S.read_episode("memory://read-episode", 5)


def test_resume_after_sigkill_gives_the_same_digest(tmp_path):
    args = ["generate", "episodes=6", "steps=40", "width=32", "height=24", "workers=1", "seed=5"]
    ref = json.loads(_cli(*args, f"out={tmp_path / 'ref'}").stdout.strip().splitlines()[-1])
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "worldsim.cli", *args, f"out={out}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "staging").glob("ep_*/zarr.json"))) < 2:
        time.sleep(0.05)
    # the kill must land mid-job: a job that had already finished would pass without exercising the resume
    assert proc.poll() is None, "generate finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not S.open_root(str(out), "r").attrs.get("finalized"), "the killed store was already finalized"
    again = _cli(*args, f"out={out}")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["digest"] == ref["digest"]
    assert S.validate(str(out))["episodes"] == 6


def test_validate_reports_corruption_and_foreign_stores(tmp_path):
    run(Job(**VOXEL, episodes=1), str(tmp_path / "s"), workers=1)
    ok = _cli("validate", str(tmp_path / "s"))
    assert ok.returncode == 0 and json.loads(ok.stdout)["valid"] is True
    chunk = next((tmp_path / "s" / "b_24x32" / "data" / "frames" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])  # truncate a frames chunk
    bad = _cli("validate", str(tmp_path / "s"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    for target in (tmp_path / "other", tmp_path / "missing"):
        r = _cli("validate", str(target))
        assert r.returncode == 1 and "Traceback" not in r.stderr


def test_generate_refuses_a_store_made_with_other_settings(tmp_path):
    out = str(tmp_path / "s")
    run(Job(**VOXEL, episodes=1), out, workers=1)
    with pytest.raises(S.StoreError, match="other settings.*steps"):
        run(Job(**{**VOXEL, "steps": 31}, episodes=1), out, workers=1)
    r = _cli("generate", "episodes=1", "steps=5", "width=32", "height=24", "policy=teleport", f"out={tmp_path / 'x'}")
    assert r.returncode == 2 and "unknown policy" in r.stderr


def test_expand_prompt():
    text = expand_prompt("snowy forest at night")
    assert any(p in text for p in BIOME_PHRASES["snow"]) and any(p in text for p in TIME_PHRASES["night"])
    with pytest.raises(ValueError, match="no known words"):
        expand_prompt("quantum chromodynamics")


def test_explorer_walks_up_to_animals_it_sees():
    import envs
    from datagen.policies import ExplorerPolicy

    env = envs.make("worldsim/Voxel-v0", width=64, height=64, task="explore").unwrapped
    _, info = env.reset(seed=5)
    policy = ExplorerPolicy(np.random.default_rng(5))
    closer = []
    for _ in range(400):
        chased = policy._chase_id if policy._chase else None
        before = {e["id"]: e["distance"] for e in info["visible"]["entities"]}
        _, _, _, _, info = env.step(policy.act(info))
        after = {e["id"]: e["distance"] for e in info["visible"]["entities"]}
        if chased is not None and policy._chase and chased in before and chased in after:
            closer.append(after[chased] < before[chased])
    env.close()
    assert len(closer) >= 10  # it did approach an animal for a while
    assert np.mean(closer) > 0.8  # and the distance shrank on most of those steps


def test_voxel_captions_count_broken_and_placed_blocks_exactly():
    """Ground truth -> text: the numbers of blocks broken and placed appear exactly, in every phrasing."""
    import re

    from voxel_helpers import act, flat_arena, make_voxel

    from datagen.captions import caption_voxel
    from envs.voxel.blocks import Block

    env = make_voxel()
    env.reset(seed=3)
    flat_arena(env, block=Block.DIRT)
    _, _, _, _, info = env.step(act(camera=[45.0, 0.0]))  # look at the ground ahead
    infos, actions, events = [info], [], []

    def step(a):
        infos.append(env.step(a)[4])
        actions.append(a)
        events.extend(infos[-1]["events"])

    for _ in range(2):  # two placements, 5 ticks apart (Minecraft's use delay is 4)
        step(act(use=1, hotbar=1))
        for _ in range(4):
            step(act())
    while sum(e["type"] == "block_broken" for e in events) < 3 and len(actions) < 300:
        step(act(attack=1))
    env.close()
    broken = sum(e["type"] == "block_broken" for e in events)
    placed = sum(e["type"] == "block_placed" for e in events)
    assert broken == 3 and placed == 2
    for seed in range(8):
        dense, short = caption_voxel(infos, actions, events, seed)
        assert re.search(r"(breaks|mines|digs out) three dirt blocks", dense), dense
        assert "places two dirt blocks" in dense, dense
        assert "mining" in short and "building" in short
        quiet, quiet_short = caption_voxel(infos[:1], [act()], [], seed)  # nothing happened: nothing claimed
        assert not re.search(r"breaks|mines|digs|places", quiet) and "mining" not in quiet_short


@pytest.mark.parametrize("phase", ["stats", "digest", "drop_staging", "card"])
def test_a_kill_at_any_finalize_phase_is_repaired_by_a_rerun(tmp_path, monkeypatch, phase):
    """A crash inside finalize (or before the card) leaves a store the same job completes, to the same digest."""
    import datagen.job as J
    import store.writer as W

    ref = run(Job(**VOXEL, episodes=2), str(tmp_path / "ref"), workers=1)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt(f"killed at {phase}")

    target = {"stats": (W, "compute_stats"), "digest": (W, "digest"), "card": (J, "write_card")}
    if phase == "drop_staging":  # after the attributes were written, while deleting the staging group
        real = W.zarr.Group.__delitem__
        monkeypatch.setattr(W.zarr.Group, "__delitem__", lambda self, key: crash() if key == "staging" else
                            real(self, key))
    else:
        monkeypatch.setattr(*target[phase], crash)
    out = str(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        run(Job(**VOXEL, episodes=2), out, workers=1)
    monkeypatch.undo()
    finalized = S.open_root(out, "r").attrs.get("finalized")
    assert finalized == (phase in ("drop_staging", "card"))  # finalized only once stats and digest are written
    again = run(Job(**VOXEL, episodes=2), out, workers=1)
    assert again["digest"] == ref["digest"] and S.validate(out)["episodes"] == 2
    assert "staging" not in S.open_root(out, "r") and (tmp_path / "killed" / "DATASET.md").is_file()


def test_two_generate_runs_into_one_store_never_both_write(tmp_path):
    """A second run into a store another process is writing is refused at once, naming the owner; with wait=true it
    queues behind it; the store the first one finishes is intact."""
    args = ["generate", "episodes=3", "steps=40", "width=32", "height=24", "workers=1", "seed=5"]
    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, "-m", "worldsim.cli", *args, f"out={out}"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    lock = tmp_path / ".shared.writer.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not lock.exists():
        time.sleep(0.02)
    assert first.poll() is None and lock.exists(), "the first run should hold the lock while it writes"
    second = _cli(*args, f"out={out}")
    assert second.returncode == 2 and f"pid {first.pid}" in second.stderr and second.stderr.count("\n") == 1
    queued = _cli(*args, f"out={out}", "wait=true")  # waits for the first, then finds the job done
    first_out, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and queued.returncode == 0, queued.stderr
    digest = json.loads(first_out.strip().splitlines()[-1])["digest"]
    assert json.loads(queued.stdout.strip().splitlines()[-1])["digest"] == digest
    assert S.validate(str(out))["digest"] == digest and not lock.exists()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    import socket

    out = tmp_path / "s"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    (tmp_path / ".s.writer.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0}))
    attrs = run(Job(**VOXEL, episodes=1), str(out), workers=1)
    assert attrs["finalized"] and not (tmp_path / ".s.writer.lock").exists()
    (tmp_path / ".s.writer.lock").write_text(json.dumps({"pid": 1, "host": "another-host", "since": 0}))
    with pytest.raises(S.StoreError, match="another-host"):
        run(Job(**VOXEL, episodes=1), str(out), workers=1)


def test_navigate_stores_record_where_the_goal_is_and_latents_keep_it(tmp_path):
    """data/task_state (navigate: the goal's offset along the view's forward and right axes) agrees with the
    rewards the engine paid (0.05 per block closer, +1 on arrival), faces the solver's goal, and travels into latent
    stores, windows and read_episode; explore records none."""
    from store.latents import cache_latents
    from store.windows import WindowReader

    job = Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": "navigate", "goal_distance": [4, 6]}, width=32,
              height=24, steps=40, episodes=2, seed=5, policy="solver")
    run(job, str(tmp_path / "s"), workers=1)
    root = S.open_root(str(tmp_path / "s"), "r")
    assert root.attrs["task_state_keys"] == ["goal_forward", "goal_right"]
    b = root["b_24x32"]
    state, rewards, term = b["data/task_state"][...], b["data/rewards"][...], b["data/terminated"][...]
    ends = b["meta/episode_ends"][...]
    assert state.shape == (ends[-1], 2) and state.dtype == np.float32
    dist = np.hypot(state[:, 0], state[:, 1])
    for a, e in zip(np.concatenate([[0], ends[:-1]]), ends):
        paid = rewards[a : e - 1] - term[a : e - 1]  # the shaping part of each transition's reward
        np.testing.assert_allclose(paid, 0.05 * (dist[a : e - 1] - dist[a + 1 : e]), atol=2e-4)
        assert term[e - 2]  # the solver arrives at a goal 4-6 blocks away within 40 steps
        assert state[e - 3, 0] > 2 * abs(state[e - 3, 1])  # walking at the goal: it is ahead, not to the side
    # latents keep it; windows and read_episode carry it
    cache_latents(str(tmp_path / "s"), str(tmp_path / "lat"), lambda f: np.zeros((len(f), 4, 3, 4), np.float16),
                  {"digest": "test", "config": {}})
    lat = S.open_root(str(tmp_path / "lat"), "r")
    assert lat.attrs["task_state_keys"] == ["goal_forward", "goal_right"]
    np.testing.assert_array_equal(lat["b_24x32/data/task_state"][...], state)
    w = WindowReader(str(tmp_path / "lat"), 2).read(3)
    np.testing.assert_array_equal(w["task_state"], state[w["start"] : w["start"] + 2])
    ep = S.read_episode(str(tmp_path / "s"), 1)
    np.testing.assert_array_equal(ep["task_state"], state[ends[0] :])
    assert json.loads(_cli("validate", str(tmp_path / "s")).stdout)["valid"]
    explore = Job(**{**VOXEL, "steps": 4}, episodes=1, seed=1)
    run(explore, str(tmp_path / "e"), workers=1)
    plain = S.open_root(str(tmp_path / "e"), "r")
    assert "task_state_keys" not in plain.attrs and "task_state" not in plain["b_24x32/data"]
