"""The gymnasium contract, determinism, vector envs, tasks, and bad input."""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from voxel_helpers import act, flat_arena, make_voxel

from envs.voxel import actions as A
from envs.voxel.blocks import Block


def _digest(obs: np.ndarray, info: dict) -> str:
    h = hashlib.sha256(obs.tobytes())
    for key in ("pose", "camera", "events", "visible", "target", "inventory", "biome", "time_of_day"):
        h.update(repr(info[key]).encode())
    return h.hexdigest()


def _rollout(seed: int, steps: int = 40, **kwargs) -> list[str]:
    env = gym.make("worldsim/Voxel-v0", width=48, height=32, **kwargs)
    env.action_space.seed(123)
    obs, info = env.reset(seed=seed)
    out = [_digest(obs, info)]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        out.append(_digest(obs, info) + f"{r}{term}{trunc}")
        if term or trunc:
            break
    env.close()
    return out


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")  # MineRL's camera range is by design
def test_make_and_check_env():
    env = gym.make("worldsim/Voxel-v0", width=64, height=64, task="navigate")
    assert env.observation_space.shape == (64, 64, 3)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_same_seed_same_actions_same_frames_and_info():
    a, b = _rollout(7), _rollout(7)
    assert a == b
    assert _rollout(8)[0] != a[0]  # another seed, another world


def test_reset_seed_none_continues_deterministically():
    env = make_voxel()
    env.reset(seed=3)
    first = _digest(*env.reset())
    env2 = make_voxel()
    env2.reset(seed=3)
    assert _digest(*env2.reset()) == first
    env.close()
    env2.close()


def test_world_seed_fixes_the_terrain_across_resets():
    env = make_voxel(world_seed=42, animals=False)
    _, i1 = env.reset(seed=1)
    _, i2 = env.reset(seed=2)
    assert i1["world_seed"] == i2["world_seed"] == 42
    other = make_voxel(world_seed=42, animals=False)
    other.reset(seed=9)
    env.world.ensure([(0, 0)])
    other.world.ensure([(0, 0)])
    assert np.array_equal(env.world.chunks[(0, 0)], other.world.chunks[(0, 0)])
    env.close()
    other.close()


def test_non_square_observation_and_ground_truth():
    env = make_voxel(width=80, height=30, depth=True, segmentation=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (30, 80, 3) and obs.dtype == np.uint8
    assert info["depth"].shape == (30, 80) and info["depth"].dtype == np.float32
    assert info["segmentation"].shape == (30, 80) and info["segmentation"].dtype == np.uint16
    k = info["camera"]["intrinsics"]
    assert k[0, 2] == 40 and k[1, 2] == 15 and k[0, 0] == k[1, 1]
    ext = info["camera"]["extrinsics"]
    assert np.allclose(ext[:3, :3] @ ext[:3, :3].T, np.eye(3))
    assert set(info["visible"]) == {"sky", "blocks", "entities"}
    assert info["biome"] in {"water", "plains", "forest", "desert", "snow", "mountains", "beach"}
    assert 0 <= info["time_of_day"] < 24
    env.close()


def test_async_vector_env():
    envs = gym.vector.AsyncVectorEnv([lambda: gym.make("worldsim/Voxel-v0", width=32, height=32)] * 2)
    obs, infos = envs.reset(seed=[0, 1])
    assert obs.shape == (2, 32, 32, 3)
    for _ in range(5):
        obs, rew, term, trunc, infos = envs.step(envs.action_space.sample())
    assert obs.shape == (2, 32, 32, 3) and rew.shape == (2,)
    assert not np.array_equal(obs[0], obs[1])
    envs.close()


def test_truncation_is_separate_from_termination():
    from envs.voxel.env import VoxelEnv

    # Both the env's own horizon and gymnasium's TimeLimit (gym.make(..., max_episode_steps=N)) truncate.
    for env in (VoxelEnv(width=16, height=16, max_episode_steps=3, animals=False),
                gym.make("worldsim/Voxel-v0", width=16, height=16, max_episode_steps=3, animals=False)):
        env.reset(seed=0)
        results = [env.step(A.noop())[2:4] for _ in range(3)]
        assert results == [(False, False), (False, False), (False, True)]
        env.close()


def test_explore_gives_no_reward(voxel):
    total = sum(voxel.step(voxel.action_space.sample())[1] for _ in range(20))
    assert total == 0.0


def test_collect_wood_rewards_each_log():
    env = make_voxel(task="collect_wood", animals=False, start_hours=12.0)
    env.reset(seed=0)
    px, pz = flat_arena(env)
    env.world.set(px, 31, pz + 1, Block.LOG)
    env.step(act(camera=[30.0, 0.0]))  # aim at the log's side, one block ahead at foot level
    rewards = [env.step(act(attack=1))[1] for _ in range(8)]
    assert sum(rewards) == 1.0 and rewards.count(1.0) == 1
    env.world.set(px, 31, pz + 1, Block.DIRT)
    assert sum(env.step(act(attack=1))[1] for _ in range(8)) == 0.0  # dirt is not wood


def test_build_rewards_each_block_placed():
    env = make_voxel(task="build", animals=False, start_hours=12.0)
    env.reset(seed=0)
    flat_arena(env)
    env.step(act(camera=[45.0, 0.0]))
    r = env.step(act(use=1, hotbar=1))[1]
    assert r == 1.0
    assert env.unwrapped.interaction.inventory_info()["items"]["planks"] == 63


def test_navigate_terminates_on_arrival_and_shapes_progress():
    env = make_voxel(task="navigate", animals=False, start_hours=12.0)
    _, info = env.reset(seed=0)
    goal = info["task"]["goal"]
    assert env.world.get(*goal) == Block.GOAL
    assert 12.0 - 1.5 <= info["task"]["goal_distance"] <= 32.0 + 1.5
    p = env.player
    # Walk straight at the goal: positive shaping, then arrival.
    p.pos = np.array([goal[0] + 0.5, goal[1] + 0.0, goal[2] - 2.5])
    p.yaw = 0.0
    obs, r, term, trunc, info = env.step(act())
    p.pos = np.array([goal[0] + 0.5, goal[1] + 0.0, goal[2] - 0.8])
    obs, r, term, trunc, info = env.step(act())
    assert term and not trunc and r > 1.0
    assert any(e["type"] == "goal_reached" for e in info["events"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"width": 0}, "width"), ({"height": -3}, "height"), ({"width": 6.5}, "width"),
     ({"task": "fly"}, "unknown voxel task"), ({"fov": 5}, "fov"),
     ({"view_distance": 0}, "view_distance")],
)
def test_bad_constructor_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        gym.make("worldsim/Voxel-v0", **kwargs)


@pytest.mark.parametrize(
    ("action", "field"),
    [({"forward": 2}, "forward"), ({"camera": [1.0, 2.0, 3.0]}, "camera"), ({"camera": [0.0, 400.0]}, "camera"),
     ({"hotbar": 12}, "hotbar"), ({"fly": 1}, "unknown action key"), (np.zeros(12), "dict")],
)
def test_bad_actions_are_clear_errors_and_change_nothing(voxel, action, field):
    before = voxel.player.pos.copy(), voxel.t
    with pytest.raises(ValueError, match=field):
        voxel.step(action)
    assert np.array_equal(voxel.player.pos, before[0]) and voxel.t == before[1]


def test_flat_actions_round_trip():
    space = A.action_space()
    space.seed(0)
    for _ in range(10):
        a = space.sample()
        b = A.from_flat(A.to_flat(a))
        assert all(int(a[k]) == b[k] for k in A.BUTTONS) and int(a["hotbar"]) == b["hotbar"]
        assert np.allclose(a["camera"], b["camera"])
