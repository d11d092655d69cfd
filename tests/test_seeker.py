"""The frame-only navigate policy (`seeker`): it reads the goal's bearing off the pixels, never the engine's state."""

from __future__ import annotations

import numpy as np
import pytest
from voxel_helpers import make_voxel

from datagen.policies import GOAL_RGB, SeekerPolicy, goal_bearing, make_policy_for
from renderers.camera import Camera


def _frame_with_blob(col: int, width: int = 64, height: int = 64) -> np.ndarray:
    frame = np.full((height, width, 3), (120, 170, 230), np.uint8)  # sky blue
    frame[28:36, col : col + 2] = GOAL_RGB
    return frame


def _k(width: int = 64, height: int = 64) -> np.ndarray:
    return Camera(fov_y=70.0, width=width, height=height).intrinsics()


def test_goal_bearing_reads_the_pillar_column_off_the_frame():
    assert goal_bearing(np.full((64, 64, 3), (120, 170, 230), np.uint8), _k()) is None
    centre = goal_bearing(_frame_with_blob(31), _k())
    assert abs(centre) < 0.1
    left, right = goal_bearing(_frame_with_blob(2), _k()), goal_bearing(_frame_with_blob(60), _k())
    assert -35.0 < left < -30.0 and 30.0 < right < 35.0  # the frame's edges are +-35 degrees of a 70 degree view
    # a wider frame of the same vertical view sees further to the sides
    assert goal_bearing(_frame_with_blob(126, width=128), _k(width=128)) > 50.0
    # fogged pillar pixels still count; one stray pixel does not
    fogged = _frame_with_blob(40)
    fogged[28:36, 40:42] = (215, 95, 190)
    assert goal_bearing(fogged, _k()) > 0
    one = np.full((64, 64, 3), (120, 170, 230), np.uint8)
    one[5, 5] = GOAL_RGB
    assert goal_bearing(one, _k()) is None


def _play(env, seed: int, hide_state: bool, steps: int = 200):
    obs, info = env.reset(seed=seed)
    policy = SeekerPolicy(np.random.default_rng(seed))
    actions, ret, arrived = [], 0.0, False
    for _ in range(steps):
        seen = {k: v for k, v in info.items() if k != "task"} if hide_state else info
        a = policy.act_on(obs, seen)
        actions.append(np.concatenate([[a[k] for k in sorted(a) if k != "camera"], a["camera"]]))
        obs, r, arrived, trunc, info = env.step(a)
        ret += r
        if arrived or trunc:
            break
    return np.array(actions), ret, arrived


def test_seeker_finds_close_goals_without_reading_where_they_are():
    env = make_voxel(task="navigate", width=64, height=64, goal_distance=(4.0, 10.0))
    arrivals = 0
    for seed in range(4):
        acts, ret, arrived = _play(env, seed, hide_state=True)
        again, _, _ = _play(env, seed, hide_state=False)
        assert np.array_equal(acts, again)  # the goal's position in info changes nothing: same seed, same actions
        arrivals += arrived
        if arrived:
            assert ret > 1.0
    assert arrivals >= 3  # 75% of 20 held-out close-goal episodes in a 300-step measurement (docs/dataset.md)


def test_seeker_scans_in_place_first_and_only_acts_on_frames():
    env = make_voxel(task="navigate", width=64, height=64)
    obs, info = env.reset(seed=1)
    policy = SeekerPolicy(np.random.default_rng(0))
    with pytest.raises(TypeError, match="act_on"):
        policy.act(info)
    blank = np.full_like(obs, 100)  # nothing in view: it turns on the spot
    a = policy.act_on(blank, info)
    assert a["forward"] == 0 and abs(a["camera"][1]) == pytest.approx(SeekerPolicy.SCAN_RATE)
    a = policy.act_on(_frame_with_blob(50), info)  # the pillar to the right: turn right and walk
    assert a["forward"] == 1 and 10.0 < a["camera"][1] <= 15.0


def test_seeker_is_a_voxel_policy():
    env = make_voxel(task="navigate")
    assert isinstance(make_policy_for("seeker", np.random.default_rng(0), env, "navigate"), SeekerPolicy)
    import gymnasium as gym

    physics = gym.make("worldsim/Physics-v0", width=32, height=32).unwrapped
    with pytest.raises(ValueError, match="seeker"):
        make_policy_for("seeker", np.random.default_rng(0), physics, "")
    physics.close()


def test_table_policy_plays_the_agents_navigation_table():
    from datagen.policies import NAVIGATE_TABLE, TablePolicy
    from worldsim.dream.wrappers import NAVIGATE

    assert NAVIGATE_TABLE == NAVIGATE  # the data policy plays what the agents play
    env = make_voxel(task="navigate")
    table = make_policy_for("table", np.random.default_rng(0), env, "navigate")
    assert isinstance(table, TablePolicy)
    seen, runs, last = set(), [], None
    for _ in range(400):
        a = table.act({})
        assert env.action_space.contains(a)  # a whole engine action
        entry = {k: (tuple(float(x) for x in a[k]) if k == "camera" else a[k]) for k in a
                 if (k == "camera" and np.any(a[k])) or (k not in ("camera", "hotbar") and a[k])}
        i = NAVIGATE_TABLE.index(entry)  # one of the table's entries, nothing else pressed
        seen.add(i)
        runs.append(i == last)
        last = i
    assert seen == set(range(len(NAVIGATE_TABLE)))
    # kept with p 0.5, redrawn uniformly otherwise: the same entry again with p 0.5 + 0.5 / 8
    assert 0.48 < np.mean(runs[1:]) < 0.64
    one, two = TablePolicy(np.random.default_rng(3)), TablePolicy(np.random.default_rng(3))  # seeded: one walk
    walk = [one.act({}) for _ in range(50)]
    assert all(x["forward"] == y["forward"] and np.array_equal(x["camera"], y["camera"])
               for x, y in zip(walk, (two.act({}) for _ in range(50)), strict=True))
    with pytest.raises(ValueError, match="repeat"):
        TablePolicy(np.random.default_rng(0), repeat=1.0)
    import gymnasium as gym

    physics = gym.make("worldsim/Physics-v0", width=32, height=32).unwrapped
    with pytest.raises(ValueError, match="table"):
        make_policy_for("table", np.random.default_rng(0), physics, "")
    physics.close()
    env.close()
