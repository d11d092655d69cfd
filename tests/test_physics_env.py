"""Physics-v0: determinism, events on constructed scenes, ground truth images, tasks, bad input."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.physics.env import PhysicsEnv
from envs.physics.scene import ObjectSpec, SceneSpec, sample_scene
from envs.physics.sim import SCENERY_IDS

TOP_DOWN = {"azimuth": 0.0, "elevation": 90.0, "distance": 1.5, "target_x": 0.0, "target_y": 0.0, "target_z": 0.0}
LIGHT = {"direction": (0.3, -0.2, 0.9), "strength": 0.7, "ambient": 0.35}


def _obj(oid, shape, pos, dims, colour="red", material="rubber", velocity=(0, 0, 0)) -> ObjectSpec:
    size = max(dims.values())
    return ObjectSpec(oid, shape, colour, material, size, dims, np.array(pos, float), np.array([0, 0, 0, 1.0]),
                      velocity=np.array(velocity, float))


def _scene(objects, pusher=(0.0, -0.35, 0.04), camera=None) -> SceneSpec:
    return SceneSpec("table", "drop", objects, dict(camera or TOP_DOWN), dict(LIGHT), None, np.array(pusher))


def _env(**kw) -> PhysicsEnv:
    kw.setdefault("width", 48)
    kw.setdefault("height", 48)
    return PhysicsEnv(**kw)


def _run(env, n, action=None):
    events = []
    for _ in range(n):
        out = env.step(np.zeros(env.action_space.shape, np.float32) if action is None else action)
        events += out[4]["events"]
    return events, out


def test_check_env_and_registration():
    env = gym.make("worldsim/Physics-v0", width=64, height=64, task="push_to_target")
    assert env.observation_space.shape == (64, 64, 3)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def _digest(seed: int) -> list[str]:
    env = gym.make("worldsim/Physics-v0", width=40, height=30)
    env.action_space.seed(5)
    obs, info = env.reset(seed=seed)
    out = []
    for _ in range(15):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        h = hashlib.sha256(obs.tobytes())
        h.update(repr([(o["position"].round(9).tolist(), o["orientation"].round(9).tolist()) for o in info["objects"]])
                 .encode())
        h.update(repr(info["events"]).encode())
        out.append(h.hexdigest())
    env.close()
    return out


def test_same_seed_same_frames_and_state():
    assert _digest(3) == _digest(3)
    assert _digest(3) != _digest(4)


def test_sphere_dropped_on_cube_is_a_collision_naming_both():
    env = _env()
    cube = _obj(1, "cube", (0.0, 0.0, 0.05), {"hx": 0.05, "hy": 0.05, "hz": 0.05}, "blue", "wood")
    ball = _obj(2, "sphere", (0.0, 0.0, 0.35), {"r": 0.04}, "red", "rubber")
    env.reset(seed=0, options={"scene": _scene([cube, ball])})
    events, _ = _run(env, 15)
    hits = [e for e in events if e["type"] == "collision" and {e["a"], e["b"]} == {1, 2}]
    assert hits, events
    assert {hits[0]["a_name"], hits[0]["b_name"]} == {"blue wood cube", "red rubber sphere"}
    assert hits[0]["impulse"] > 0.02
    # Nothing touched at spawn is reported as a collision (the cube rests on the table from the start).
    assert not [e for e in events if e["type"] == "collision" and {e["a"], e["b"]} == {1, SCENERY_IDS["table"]}]


def test_object_pushed_off_the_table_falls():
    env = _env()
    cube = _obj(1, "cube", (0.45, 0.0, 0.04), {"hx": 0.04, "hy": 0.04, "hz": 0.04}, "green", "plastic")
    env.reset(seed=0, options={"scene": _scene([cube], pusher=(0.3, 0.0, 0.04))})
    events, (_, _, _, _, info) = _run(env, 40, np.array([1.0, 0.0], np.float32))  # push towards +x, the edge
    kinds = [e["type"] for e in events]
    assert "fell_off_table" in kinds
    fell = next(e for e in events if e["type"] == "fell_off_table")
    assert fell["id"] == 1 and fell["name"] == "green plastic cube"
    assert info["objects"][0]["position"][2] < -0.15 and info["objects"][0]["fell_off_table"]


def test_segmentation_ids_are_object_ids_and_depth_of_the_table_plane():
    env = _env(width=64, height=64, depth=True, segmentation=True)
    ball = _obj(1, "sphere", (0.0, 0.0, 0.05), {"r": 0.05})
    cube = _obj(2, "cube", (0.25, 0.0, 0.04), {"hx": 0.04, "hy": 0.04, "hz": 0.04}, "yellow")
    _, info = env.reset(seed=0, options={"scene": _scene([ball, cube], pusher=(-0.4, 0.3, 0.04))})
    seg, depth = info["segmentation"], info["depth"]
    assert seg[32, 32] == 1  # the sphere under the camera
    for o in info["objects"]:
        uv, _ = env._cam.project(o["position"][None])
        u, v = (int(round(x)) for x in uv[0])
        assert seg[v, u] == o["id"]
        assert o["pixels"] == int((seg == o["id"]).sum()) > 0
    assert SCENERY_IDS["table"] in seg
    # Straight down from 1.5 m above the table top: z-depth of the table is 1.5 everywhere it shows.
    table = seg == SCENERY_IDS["table"]
    assert np.allclose(depth[table], 1.5, atol=0.01)
    # The sphere's top is 0.1 m above the table: 1.4 m away at the centre.
    assert depth[32, 32] == pytest.approx(1.4, abs=0.01)


def test_camera_control_orbits_and_zooms():
    env = _env(control="camera")
    env.reset(seed=1)
    before = env.cam.copy()
    _run(env, 15, np.array([1.0, 0.0, 1.0], np.float32))  # 1 s of orbit and zoom out
    assert (env.cam["azimuth"] - before["azimuth"]) % 360 == pytest.approx(60.0, abs=1e-6)
    assert env.cam["distance"] > before["distance"] * 1.5
    fast = _env(control="both", orbit_rate=240.0)
    fast.reset(seed=1)
    before = fast.cam["azimuth"]
    fast.step(np.array([0.0, 0.0, -0.5, 0.0, 0.0], np.float32))
    assert (before - fast.cam["azimuth"]) % 360 == pytest.approx(8.0, abs=1e-6)  # 240 deg/s x 0.5 / 15 fps
    assert json.loads(fast.action_spec_json())["units"]["orbit"] == "240.0 deg/s"


def test_orbit_back_policy_returns_the_camera_to_where_it_left():
    from datagen.policies import OrbitBackPolicy, make_policy_for

    env = _env(control="both", orbit_rate=240.0)
    _, info = env.reset(seed=2)
    policy, azimuths, orbits = OrbitBackPolicy(np.random.default_rng(0), 5), [], []
    for _ in range(120):
        a = policy.act(info)
        assert a.shape == (5,) and np.all(np.abs(a) <= 1)
        _, _, _, _, info = env.step(a)
        azimuths.append(info["camera"]["azimuth"])
        orbits.append(float(a[2]))
    runs, i = [], 2
    while i < len(orbits):  # an excursion: 2 still steps, then a fast orbit (its way back may follow still steps too)
        if abs(orbits[i]) >= 0.6 and orbits[i - 1] == orbits[i - 2] == 0:
            runs.append(i)
            i += 12
        i += 1
    assert runs  # excursions happened, and each came back to the azimuth it left within 14 steps
    for i in runs:
        if i + 14 < len(orbits):
            gone = [abs((azimuths[j] - azimuths[i - 1] + 180) % 360 - 180) for j in range(i, i + 14)]
            assert max(gone) >= 30 and min(gone[4:]) < 1e-3
    with pytest.raises(ValueError, match="orbits the camera"):
        make_policy_for("lookback", np.random.default_rng(0), _env(control="pusher"), "observe")


def test_observe_task_has_no_reward_and_truncates():
    env = _env(max_episode_steps=5)
    env.reset(seed=0)
    results = [env.step(np.zeros(2, np.float32))[1:4] for _ in range(5)]
    assert all(r == 0.0 and not term for r, term, _ in results)
    assert [trunc for *_, trunc in results] == [False] * 4 + [True]


def test_push_to_target_rewards_arrival():
    env = _env(task="push_to_target", num_objects=3)
    _, info = env.reset(seed=2)
    task = info["task"]
    assert task["instruction"] == f"push the {task['target_name']} into the goal"
    target = next(b for b in env.sim.objects if b.seg == task["target"])
    gx, gy = task["goal"]
    env.sim.client.resetBasePositionAndOrientation(target.uid, [gx, gy, 0.1], [0, 0, 0, 1])
    rewards, terminated = [], False
    for _ in range(10):
        _, r, terminated, _, info = env.step(np.zeros(2, np.float32))
        rewards.append(r)
        if terminated:
            break
    assert terminated and rewards[-1] > 1.0
    assert any(e["type"] == "entered_goal" for e in info["events"])


def test_topple_tower_counts_blocks_and_ends_when_all_are_down():
    env = _env(task="topple_tower", num_objects=4)
    _, info = env.reset(seed=0)
    tower = info["task"]["tower"]
    assert len(tower) >= 3
    _, (_, r, term, _, _) = _run(env, 10)
    assert r == 0.0 and not term  # a tower left alone stands
    total, term = 0.0, False
    for oid in tower:  # knock every block over onto the table
        b = next(b for b in env.sim.objects if b.seg == oid)
        env.sim.client.resetBasePositionAndOrientation(b.uid, [0.3 - 0.12 * tower.index(oid), 0.25, 0.06],
                                                       [0.7071, 0, 0, 0.7071])
    for _ in range(5):
        _, r, term, _, info = env.step(np.zeros(2, np.float32))
        total += r
        if term:
            break
    assert total == len(tower) and term


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"num_objects": 16, "object_size": (0.2, 0.3)}, "do not fit"), ({"object_size": (0.001, 0.05)}, "object_size"),
     ({"task": "juggle"}, "unknown physics task"), ({"width": 0}, "width"), ({"physics_hz": 100}, "physics_hz"),
     ({"control": "mind"}, "control"), ({"task": "topple_tower", "spawn": "drop"}, "needs spawn"),
     ({"num_objects": 40}, "num_objects"), ({"orbit_rate": 0}, "orbit_rate"), ({"orbit_rate": 1e4}, "orbit_rate")],
)
def test_bad_configuration_is_a_clear_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        PhysicsEnv(**kwargs)


def test_bad_actions_are_clear_errors():
    env = _env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(np.array([2.0, 0.0], np.float32))


def test_tiny_renderer_backend_gives_the_same_kind_of_output():
    env = _env(renderer="tiny", segmentation=True, depth=True)
    obs, info = env.reset(seed=0, options={"scene": _scene([_obj(1, "sphere", (0, 0, 0.05), {"r": 0.05})])})
    assert obs.shape == (48, 48, 3) and info["segmentation"][24, 24] == 1
    assert info["depth"][24, 24] == pytest.approx(1.4, abs=0.03)


def test_every_spawn_mode_and_scene_kind_builds():
    rng = np.random.default_rng(0)
    for spawn in ("drop", "throw", "tower", "ramp"):
        for kind in ("table", "floor", "room"):
            spec = sample_scene(rng, 8, spawn, kind, (0.03, 0.07))
            assert len(spec.objects) == 8
    env = _env(spawn="ramp", scene="room")
    env.reset(seed=0)
    _run(env, 5)


@pytest.mark.parametrize("mode", ["velocity", "force"])
def test_pusher_moves_under_both_control_modes(mode):
    env = _env(pusher_mode=mode)
    env.reset(seed=0, options={"scene": _scene([_obj(1, "sphere", (0.4, 0.3, 0.04), {"r": 0.04})],
                                               pusher=(-0.3, -0.2, 0.04))})
    start = env.sim.pose(env.sim.pusher)[0].copy()
    _run(env, 8, np.array([0.0, 1.0], np.float32))
    moved = env.sim.pose(env.sim.pusher)[0] - start
    assert moved[1] > 0.1 and abs(moved[0]) < 0.02 and abs(moved[2]) < 0.01
