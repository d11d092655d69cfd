"""RL inside the learned simulator: the DiscreteActions wrapper on the engine and on DreamEnv, the flat action layout
DreamEnv feeds the model, and stable-baselines3 PPO trained in a dream then acting in the engine.

A tiny navigate store at 32 px, a VAE and a frame-causal DiT trained for a few steps (untrained weights are enough:
these tests are about plumbing, not skill), built once per module.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers worldsim/Voxel-v0: tests may use the engine, worldsim itself never does)
from envs.voxel.actions import action_spec_json, to_flat
from store.spaces import flatten_action, space_from_spec, unflatten_action
from worldsim.dream.wrappers import NAVIGATE, DiscreteActions, noop_action
from worldsim.errors import InputError

SIZE = 32



# tiny tensors gain nothing from threads, and on shared cores OpenMP threads spin against other processes
pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def runs(tiny_pipeline):
    return {"store": str(tiny_pipeline["store"]), "dit": str(tiny_pipeline["causal"])}


def _engine(max_steps: int = 50) -> gym.Env:
    return gym.make("worldsim/Voxel-v0", task="navigate", width=SIZE, height=SIZE, max_episode_steps=max_steps)


def _dream(runs, **kw) -> gym.Env:
    from worldsim import DreamEnv

    with pytest.warns(UserWarning, match="no reward model"):
        return DreamEnv.from_checkpoint(runs["dit"], store=runs["store"], steps=1, precision="fp32", **kw)


def test_discrete_actions_are_valid_engine_actions():
    engine = _engine()
    env = DiscreteActions(engine, NAVIGATE)
    assert env.action_space == gym.spaces.Discrete(len(NAVIGATE))
    env.reset(seed=0)
    for i in range(len(NAVIGATE)):
        a = env.action(i)
        assert engine.action_space.contains(a), (i, a)
        for k, v in NAVIGATE[i].items():  # what the entry names is set, the rest is no-op
            assert np.array_equal(a[k], v)
        assert all(a[k] == 0 for k in ("attack", "use", "back", "hotbar"))
        obs, *_ = env.step(np.int64(i))  # numpy integers too (what agents give)
        assert obs.shape == (SIZE, SIZE, 3)
    assert env.action(1) is not env.action(1) and env.action(1)["camera"] is not env.action(1)["camera"]
    yaw = []
    for i in (3, 3, 4):  # the table's camera turns move the engine's camera by their degrees
        _, _, _, _, info = env.step(i)
        yaw.append(info["pose"]["yaw"])
    assert np.isclose((yaw[1] - yaw[0] + 180) % 360 - 180, NAVIGATE[3]["camera"][1])
    assert np.isclose((yaw[2] - yaw[1] + 180) % 360 - 180, NAVIGATE[4]["camera"][1])
    noop = noop_action(engine.action_space)
    assert engine.action_space.contains(noop) and noop["forward"] == 0 and not noop["camera"].any()


def test_discrete_actions_reject_bad_tables_and_indices():
    engine = _engine()
    with pytest.raises(ValueError, match="entry 1 has unknown key.*'fly'"):
        DiscreteActions(engine, [{}, {"fly": 1}])
    with pytest.raises(ValueError, match="entry 0.*camera"):
        DiscreteActions(engine, [{"camera": (0.0, 400.0)}])
    with pytest.raises(ValueError, match="entry 0.*forward"):
        DiscreteActions(engine, [{"forward": 2}])
    with pytest.raises(ValueError, match="empty"):
        DiscreteActions(engine, [])
    with pytest.raises(ValueError, match="Dict action space"):
        DiscreteActions(gym.make("CartPole-v1"), [{}])
    env = DiscreteActions(engine, NAVIGATE)
    for bad in (len(NAVIGATE), -1, 1.5):
        with pytest.raises(ValueError, match="not in Discrete"):
            env.action(bad)


def test_flat_actions_follow_the_stored_layout():
    """The model learned actions in the engine's flat order (forward first, ...); gymnasium sorts Dict keys and
    checkpoints store the spec with sorted keys, so flattening must follow `flat_keys`, not the Dict's order."""
    spec = json.loads(json.dumps(json.loads(action_spec_json()), sort_keys=True))  # as a checkpoint holds it
    space = space_from_spec(spec)
    env = DiscreteActions(_engine(), NAVIGATE)
    for i in range(len(NAVIGATE)):
        a = env.action(i)
        vec = flatten_action(spec, space, a)
        assert np.array_equal(vec, to_flat(a)), (i, vec, to_flat(a))
        back = unflatten_action(spec, space, vec)
        assert all(np.array_equal(back[k], a[k]) for k in a)


def test_ppo_trained_in_a_dream_acts_in_the_engine(runs):
    from stable_baselines3 import PPO

    dream = DiscreteActions(_dream(runs, max_episode_steps=16), NAVIGATE)
    engine = DiscreteActions(_engine(max_steps=32), NAVIGATE)
    assert dream.action_space == engine.action_space
    assert dream.observation_space == engine.observation_space
    assert dream.unwrapped.action_space == engine.unwrapped.action_space  # the spec rebuilt the engine's space

    lengths: list[int] = []

    class EpisodeLengths(gym.Wrapper):
        """Records how long each dreamed episode PPO played lasted."""

        def reset(self, **kwargs):
            self.n = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            out = self.env.step(action)
            self.n += 1
            if out[2] or out[3]:
                lengths.append(self.n)
            return out

    model = PPO("MlpPolicy", EpisodeLengths(dream), n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))  # no empty SB3 folder left in /tmp
    model.learn(total_timesteps=256)
    # our env's behaviour under PPO: without a reward model nothing terminates, so every episode is truncated at
    # the dream's own horizon, 16 episodes of 16 steps in 256
    assert lengths == [16] * 16

    obs, _ = engine.reset(seed=123)
    taken = set()
    for _ in range(40):
        a, _ = model.predict(obs, deterministic=False)
        assert engine.action_space.contains(int(a))
        taken.add(int(a))
        assert engine.unwrapped.action_space.contains(engine.action(a))
        obs, reward, terminated, truncated, info = engine.step(a)
        assert obs.shape == dream.observation_space.shape and np.isfinite(reward)
        if terminated or truncated:
            obs, _ = engine.reset()
    assert len(taken) > 1  # a barely trained policy still samples several table entries


def test_rl_dream_example_help_teaches():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "rl_dream.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("--checkpoint", "--reward", "DreamEnv", "worldsim train-reward", "success", "held-out"):
        assert word in out.stdout, word


@pytest.mark.parametrize("env, message", [({"OBSERVE": "pixels"}, "OBSERVE must be frames, frames+goal or goal"),
                                          ({"DREAM_STEPS": "8x"}, "DREAM_STEPS must be a positive integer"),
                                          ({"GOAL_MAPS": "yes"}, "GOAL_MAPS must be 0 or 1"),
                                          ({"ADV": "-1"}, "ADV must be a non-negative number"),
                                          ({"ADV": "0.3", "GOAL_MAPS": "0"}, "ADV applies to the goal-map"),
                                          ({"BLUR": "9"}, "BLUR must be a std in pixels in [0, 8]"),
                                          ({"BLUR": "-1"}, "BLUR must be a std in pixels in [0, 8]"),
                                          ({"SHIFT": "1.5"}, "SHIFT must be a pad in pixels"),
                                          ({"SHIFT": "17"}, "SHIFT must be a pad in pixels"),
                                          ({"STATE_REWARD": "yes"}, "STATE_REWARD must be 0 or 1"),
                                          ({"TABLE": "y"}, "TABLE must be 0 or 1"),
                                          ({"END": "2"}, "END must be 0 or 1"),
                                          ({"SPAWN": "first"}, "SPAWN must be 0 or 1"),
                                          ({"DREAMS": "1024"}, "DREAMS must be 0 or 1"),
                                          ({"LEARNED": "2"}, "LEARNED must be 0 or 1")])
def test_rl_navigate_script_refuses_bad_settings_before_it_writes(tmp_path, env, message):
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "rl_navigate.sh"
    out = tmp_path / "rlnav"
    proc = subprocess.run(["bash", str(script)], env={**os.environ, "OUT": str(out), **env}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not out.exists()


def test_rl_dream_example_runs_end_to_end(runs, tmp_path):
    """The example's whole path on the tiny checkpoint: dream PPO, engine PPO, random, scored on held-out seeds."""

    mod = _rl_dream()
    out = tmp_path / "rl.json"
    argv = ["--checkpoint", runs["dit"], "--steps", "32", "--n-envs", "2", "--n-steps", "16", "--eval-episodes",
            "2", "--max-steps", "8", "--dream-episode-steps", "8", "--dream-steps", "1", "--policy", "MlpPolicy",
            "--solver", "--seeds", "0", "1", "--goal-distance", "3", "6", "--out", str(out)]
    with pytest.warns(UserWarning, match="no reward model"):
        res = mod.main(argv)
    assert json.loads(out.read_text())["table"] == res["table"]
    agents = {"random", "scripted solver (privileged)", "scripted seeker (frames only)", "PPO (dream)",
              "PPO (engine)"}
    assert set(res["summary"]) == agents and set(res["seeds"]) == {"0", "1"}
    assert res["config"]["store"] == runs["store"]  # dreams start from the checkpoint's own store by default
    for name, s in res["summary"].items():
        per_seed = [res["seeds"][k][name]["eval"]["return_mean"] for k in ("0", "1")]
        assert s["return_mean"] == pytest.approx(np.mean(per_seed)) and s["return_std_over_seeds"] == pytest.approx(
            np.std(per_seed))
        for k in ("0", "1"):
            ev = res["seeds"][k][name]["eval"]
            assert len(ev["returns"]) == 2 and 0.0 <= ev["success_rate"] <= 1.0
            assert 2.0 <= ev["start_distance_mean"] <= 7.5  # --goal-distance 3 6 reached the engine
    dream = res["seeds"]["0"]["PPO (dream)"]["train"]
    assert dream["steps"] == 32 and dream["train_episodes"] == 4  # 2 batched dreams x 16 steps, 8-step episodes
    assert set(res["target"]) == {"ratio", "gain_ratio", "dream_above_random", "half_of_engine"}
    again_out = tmp_path / "again.json"
    argv_again = argv[: argv.index("--seeds")] + ["--seeds", "1", "--goal-distance", "3", "6", "--out", str(again_out)]
    with pytest.warns(UserWarning, match="no reward model"):
        again = mod.main(argv_again)
    assert _without_times(again["seeds"]["1"]) == _without_times(res["seeds"]["1"])  # same seed, same numbers
    assert _without_times(res["seeds"]["0"]) != _without_times(res["seeds"]["1"])  # the seed matters

    # --merge: one table over runs of the same settings made apart (seeds in parallel processes)
    with pytest.raises(SystemExit, match=r"seed 1's PPO \(dream\) is in more than one file"):
        mod.main(["--merge", str(out), str(again_out), "--out", str(tmp_path / "m.json")])
    # the same seeds with other agents (a --skip engine run, a --skip dream one) merge agent by agent
    full = json.loads(out.read_text())
    for skip, drop in (("engine", "PPO (engine)"), ("dream", "PPO (dream)")):
        part = {**full, "config": {**full["config"], "skip": [skip], "solver": skip == "engine"},
                "seeds": {k: {n: r for n, r in v.items() if n != drop and (skip == "engine" or "scripted" not in n)}
                          for k, v in full["seeds"].items()}}
        (tmp_path / f"skip_{skip}.json").write_text(json.dumps(part))
    split = mod.main(["--merge", str(tmp_path / "skip_dream.json"), str(tmp_path / "skip_engine.json"), "--out",
                      str(tmp_path / "m.json")])
    assert split["summary"] == res["summary"] and split["table"] == res["table"] and split["target"] == res["target"]
    assert split["config"]["skip"] == [] and split["config"]["solver"] is True
    part = json.loads((tmp_path / "skip_dream.json").read_text())
    part["seeds"]["0"]["random"]["eval"]["return_mean"] += 1.0
    (tmp_path / "skip_dream.json").write_text(json.dumps(part))
    with pytest.raises(SystemExit, match="seed 0's random is in more than one file with other scores"):
        mod.main(["--merge", str(tmp_path / "skip_dream.json"), str(tmp_path / "skip_engine.json"), "--out",
                  str(tmp_path / "m.json")])
    del part["seeds"]["1"]
    part["seeds"]["0"]["random"] = full["seeds"]["0"]["random"]
    (tmp_path / "skip_dream.json").write_text(json.dumps(part))
    with pytest.raises(SystemExit, match=r"seed 1 lacks PPO \(engine\)"):
        mod.main(["--merge", str(tmp_path / "skip_dream.json"), str(tmp_path / "skip_engine.json"), "--out",
                  str(tmp_path / "m.json")])
    moved = json.loads(again_out.read_text())
    moved["seeds"] = {"5": moved["seeds"]["1"]}
    (tmp_path / "seed5.json").write_text(json.dumps(moved))
    both = mod.main(["--merge", str(out), str(tmp_path / "seed5.json"), "--out", str(tmp_path / "m.json")])
    assert both["config"]["seeds"] == [0, 1, 5] and len(both["summary"]["PPO (dream)"]["return_per_seed"]) == 3
    per_seed = [both["seeds"][k]["PPO (engine)"]["eval"]["return_mean"] for k in ("0", "1", "5")]
    assert both["summary"]["PPO (engine)"]["return_mean"] == pytest.approx(np.mean(per_seed))
    moved["config"]["steps"] = 64
    (tmp_path / "other.json").write_text(json.dumps(moved))
    with pytest.raises(SystemExit, match="other settings.*steps"):
        mod.main(["--merge", str(out), str(tmp_path / "other.json"), "--out", str(tmp_path / "m.json")])


def test_rl_dream_blur_shows_every_agent_blurred_frames(runs, tmp_path):
    """--blur SIGMA: the PPO agents see their frames through a gaussian blur, the engine's (training and scoring)
    and the dream's (every reset, step and ended dream) alike; the scripted references play the engine's own frames;
    results written before the setting existed merge as runs without blur; out-of-range values are refused."""

    from worldsim.eval.metrics import detail

    mod = _rl_dream()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert mod.blurred(frames, 0.0) is frames
    soft = mod.blurred(frames, 1.0)
    assert soft.shape == frames.shape and soft.dtype == np.uint8
    assert np.array_equal(mod.blurred(frames[1], 1.0), soft[1])  # one frame or a batch: the same
    assert detail(soft).sum() < 0.2 * detail(frames).sum()
    assert abs(float(soft.mean()) - float(frames.mean())) < 2.0  # a blur moves no brightness
    flat = np.full((8, 8, 3), 77, np.uint8)
    assert np.array_equal(mod.blurred(flat, 2.0), flat)

    argv = ["--checkpoint", runs["dit"], "--store", runs["store"], "--n-envs", "2", "--dream-steps", "1",
            "--dream-episode-steps", "2", "--max-steps", "6", "--goal-distance", "3", "6"]
    plain, soft_args = mod.parse_args(argv), mod.parse_args([*argv, "--blur", "1.5"])
    a, b = mod.make_engine((32, 32), plain), mod.make_engine((32, 32), soft_args)
    sharp = a.reset(seed=3)[0]
    assert np.array_equal(b.reset(seed=3)[0], mod.blurred(sharp, 1.5))
    assert np.array_equal(mod.engine_itself(b).reset(seed=3)[0], sharp)  # the scripted references' view
    with pytest.warns(UserWarning, match="no reward model"):
        d0, d1 = mod.make_dream(plain, runs["store"]), mod.make_dream(soft_args, runs["store"])
    d0.seed(4)
    d1.seed(4)
    first = d0.reset()
    assert np.array_equal(d1.reset(), mod.blurred(first, 1.5))
    ended = []
    for _ in range(3):
        d0.step_async(np.array([1, 3]))
        d1.step_async(np.array([1, 3]))
        (o0, _, done0, info0), (o1, _, done1, info1) = d0.step_wait(), d1.step_wait()
        assert np.array_equal(o1, mod.blurred(o0, 1.5)) and np.array_equal(done0, done1)
        for i in np.flatnonzero(done0):  # the last frame of a finished dream too
            want = mod.blurred(info0[i]["terminal_observation"], 1.5)
            assert np.array_equal(info1[i]["terminal_observation"], want)
            ended.append(i)
    assert len(ended) == 2  # 2-step dreams: the second step ended both
    for bad in ("-1", "9"):
        with pytest.raises(SystemExit):
            mod.parse_args([*argv, "--blur", bad])

    _merges_as_before(mod, vars(plain), "blur", 0.0, 1.0, tmp_path)


def _merges_as_before(mod, config: dict, name: str, default, other, tmp_path) -> None:
    """A results file written before setting `name` existed merges with one run at its default; one run with
    `other` does not."""
    old = {"config": {k: v for k, v in config.items() if k != name}, "wall_seconds": 1.0,
           "seeds": {"0": {"random": {"eval": {"return_mean": 0.0, "success_rate": 0.0, "blocks_gained_mean": 0.0}}}}}
    new = {**old, "config": {**config, "seeds": [1]}, "seeds": {"1": old["seeds"]["0"]}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    both = mod.main(["--merge", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--out",
                     str(tmp_path / "m.json")])
    assert both["config"]["seeds"] == [0, 1] and both["config"][name] == default
    (tmp_path / "new.json").write_text(json.dumps({**new, "config": {**new["config"], name: other}}))
    with pytest.raises(SystemExit, match=f"other settings.*{name}"):
        mod.main(["--merge", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--out",
                  str(tmp_path / "m.json")])


def _rl_dream():
    """examples/rl_dream.py as a module (examples are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("rl_dream", Path(__file__).resolve().parents[1] / "examples"
                                                  / "rl_dream.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _is_shift(moved: np.ndarray, frame: np.ndarray, pad: int) -> bool:
    """`moved` is `frame` moved by some offset of at most `pad` pixels each way, edges repeated."""
    h, w = frame.shape[:2]
    padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return any(np.array_equal(padded[y:y + h, x:x + w], moved) for y in range(2 * pad + 1)
               for x in range(2 * pad + 1))


def test_rl_dream_shift_moves_training_frames_only(runs, tmp_path):
    """--shift PAD: while training, the PPO agents see every frame moved by its own random offset of up to PAD
    pixels (edges repeated), in the engine's training copies and in the dream (resets, steps, ended dreams) alike;
    the engine the agents are scored in and the scripted references' view are not moved; the offsets follow the
    seed; results written before the setting existed merge as runs without it; bad pads are refused."""
    mod = _rl_dream()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    assert mod.shifted(frames, 0, rng) is frames
    moved = mod.shifted(frames, 3, np.random.default_rng(1))
    assert moved.shape == frames.shape and moved.dtype == np.uint8
    assert all(_is_shift(m, f, 3) for m, f in zip(moved, frames))
    assert not all(np.array_equal(m, f) for m, f in zip(moved, frames))  # some frame moved
    assert np.array_equal(mod.shifted(frames, 3, np.random.default_rng(1)), moved)  # same draws, same frames
    assert not np.array_equal(mod.shifted(frames, 3, np.random.default_rng(2)), moved)
    dot = np.zeros((1, 12, 12, 3), np.uint8)
    dot[0, 6, 6] = 255  # a lone bright pixel lands within PAD of where it was, each frame on its own offset
    spots = {tuple(np.argwhere(mod.shifted(dot, 2, np.random.default_rng(k))[0, :, :, 0])[0]) for k in range(40)}
    assert len(spots) > 5 and all(abs(y - 6) <= 2 and abs(x - 6) <= 2 for y, x in spots)

    argv = ["--checkpoint", runs["dit"], "--store", runs["store"], "--n-envs", "2", "--dream-steps", "1",
            "--dream-episode-steps", "2", "--max-steps", "6", "--goal-distance", "3", "6"]
    plain, moving = mod.parse_args(argv), mod.parse_args([*argv, "--shift", "2"])
    view = mod.make_engine((32, 32), plain).reset(seed=3)[0]
    assert np.array_equal(mod.make_engine((32, 32), moving).reset(seed=3)[0], view)  # scored as it is
    train = mod.make_engine((32, 32), moving, train_seed=5)
    assert _is_shift(train.reset(seed=3)[0], view, 2)
    assert np.array_equal(mod.engine_itself(train).reset(seed=3)[0], view)  # the scripted references' view
    again = [mod.make_engine((32, 32), moving, train_seed=5).reset(seed=3)[0] for _ in range(2)]
    assert np.array_equal(*again)  # the training copy's offsets follow its seed
    with pytest.warns(UserWarning, match="no reward model"):
        d0, d1 = mod.make_dream(plain, runs["store"], seed=7), mod.make_dream(moving, runs["store"], seed=7)
    d0.seed(4)
    d1.seed(4)
    first, first_moved = d0.reset(), d1.reset()
    assert all(_is_shift(m, f, 2) for m, f in zip(first_moved, first))
    seen = [first_moved]
    for _ in range(2):
        d0.step_async(np.array([1, 3]))
        d1.step_async(np.array([1, 3]))
        (o0, _, done0, info0), (o1, _, done1, info1) = d0.step_wait(), d1.step_wait()
        assert np.array_equal(done0, done1) and all(_is_shift(m, f, 2) for m, f in zip(o1, o0))
        seen.append(o1)
    assert done0.all()  # 2-step dreams: the second step ended both, their last frames moved too
    assert all(_is_shift(info1[i]["terminal_observation"], info0[i]["terminal_observation"], 2) for i in range(2))
    assert any(not np.array_equal(m, f) for m, f in zip(np.concatenate(seen), first))
    for bad in ("-1", "17"):
        with pytest.raises(SystemExit):
            mod.parse_args([*argv, "--shift", bad])

    _merges_as_before(mod, vars(plain), "shift", 0, 4, tmp_path)


def test_rl_dream_start_first_starts_every_dream_where_an_episode_starts(runs, tmp_path):
    """--dream-start first: every dream (resets and autoresets) starts at a store episode's first frames."""
    from store import episode_indices, read_episode

    mod = _rl_dream()
    argv = ["--checkpoint", runs["dit"], "--store", runs["store"], "--n-envs", "2", "--dream-steps", "1",
            "--dream-episode-steps", "2", "--max-steps", "6", "--goal-distance", "3", "6"]
    with pytest.warns(UserWarning, match="no reward model"):
        anywhere, first = mod.make_dream(mod.parse_args(argv), runs["store"]), \
            mod.make_dream(mod.parse_args([*argv, "--dream-start", "first"]), runs["store"])
    context = first.venv.core.context
    eps = [read_episode(runs["store"], i)["frames"] for i in episode_indices(runs["store"])]
    starts = [f[min(context, len(f)) - 1] for f in eps]  # a dream's first frame is its context's last

    def at_start(frame: np.ndarray) -> bool:
        return any(np.array_equal(frame, s) for s in starts)

    for env in (anywhere, first):
        env.seed(4)
    shown = {"any": [*anywhere.reset()], "first": [*first.reset()]}
    for _ in range(6):  # 2-step dreams: three rounds of autoresets
        for name, env in (("any", anywhere), ("first", first)):
            env.step_async(np.array([1, 3]))
            obs, _, done, _ = env.step_wait()
            shown[name] += [obs[i] for i in np.flatnonzero(done)]
    assert len(shown["first"]) == 2 + 6 and all(at_start(f) for f in shown["first"])
    assert not all(at_start(f) for f in shown["any"])  # the default starts anywhere in an episode
    with pytest.raises(SystemExit):
        mod.parse_args([*argv, "--dream-start", "last"])
    _merges_as_before(mod, vars(mod.parse_args(argv)), "dream_start", "any", "first", tmp_path)


def _without_times(results: dict) -> dict:
    return {name: {part: {k: v for k, v in d.items() if k != "train_seconds"} for part, d in r.items()}
            for name, r in results.items()}


def test_rl_dream_observe_gives_every_agent_the_goal(runs, tmp_path):
    """--observe frames+goal / goal: the agents see the goal's offset (/ 10 blocks) beside the frame or alone: in
    the engine the task's state, in the dream the reward model's estimate (trained with task_state=true
    model.odometry=true); a reward model that does not track the goal is refused in one line, and an odometry
    model refuses resets that give it no goal to follow."""

    from worldsim.cli import main as cli

    mod = _rl_dream()
    reward = tmp_path / "reward"
    common = [f"ckpt={runs['dit']}", f"store={runs['store']}", "steps=3", "seq_len=4", "batch_size=2",
              "val_episodes=1", "task_state=true", "log_every=1"]
    assert cli(["train-reward", *common, f"out={reward}", "model.odometry=true"]) == 0
    argv = ["--checkpoint", runs["dit"], "--reward", str(reward), "--store", runs["store"], "--steps", "32",
            "--n-envs", "2", "--n-steps", "16", "--eval-episodes", "1", "--max-steps", "6", "--dream-steps", "1",
            "--policy", "MlpPolicy", "--seeds", "0", "--goal-distance", "3", "6"]
    for observe in ("frames+goal", "goal"):
        res = mod.main([*argv, "--observe", observe, "--solver", "--out", str(tmp_path / f"{observe}.json")])
        assert set(res["summary"]) == {"random", "scripted solver (privileged)", "scripted seeker (frames only)",
                                       "PPO (dream)", "PPO (engine)"} and res["config"]["observe"] == observe
    engine = mod.make_engine((32, 32), mod.parse_args([*argv, "--observe", "frames+goal"]))
    obs, info = engine.reset(seed=1)
    assert set(obs) == {"image", "goal"} and np.allclose(obs["goal"], np.asarray(info["task"]["state"]) / 10)
    goal_only = mod.make_engine((32, 32), mod.parse_args([*argv, "--observe", "goal"]))
    assert np.array_equal(goal_only.reset(seed=1)[0], obs["goal"])
    dream = mod.make_dream(mod.parse_args([*argv, "--observe", "frames+goal"]), runs["store"])
    first = dream.reset()
    assert first["image"].shape == (2, 32, 32, 3) and first["goal"].shape == (2, 2)
    assert np.allclose(first["goal"], dream.venv.task_estimate() / 10)
    with pytest.raises(InputError, match="reset from a store that records data/task_state"):
        dream.venv.reset(seed=0, options={"frames": first["image"][0]})
    plain = tmp_path / "plain"
    assert cli(["train-reward", *common, f"out={plain}"]) == 0
    with pytest.raises(SystemExit, match="--observe goal: the dream has no goal estimate"):
        mod.make_dream(mod.parse_args([*argv[:2], "--reward", str(plain), *argv[4:], "--observe", "goal"]),
                       runs["store"]).reset()


def test_learned_reward_pays_the_engine_by_the_reward_model(runs, tmp_path):
    """LearnedReward: the engine's frames, actions and ends as they are, its reward and termination from the reward
    model reading the VAE latents of each step's frames (what DreamEnv pays with), the engine's own kept in info;
    an odometry model starts from the engine's task state. rl_dream.py --learned-engine trains PPO on it."""
    import torch

    from worldsim.cli import main as cli
    from worldsim.dream.wrappers import LearnedReward

    reward = tmp_path / "reward"
    assert cli(["train-reward", f"ckpt={runs['dit']}", f"store={runs['store']}", "steps=3", "seq_len=4",
                "batch_size=2", "val_episodes=1", "task_state=true", "log_every=1", f"out={reward}",
                "model.odometry=true"]) == 0
    sampler, model = LearnedReward.parts(runs["dit"], str(reward))
    env = DiscreteActions(LearnedReward(_engine(max_steps=12), sampler, model), NAVIGATE)
    plain = DiscreteActions(_engine(max_steps=12), NAVIGATE)
    obs, info = env.reset(seed=3)
    ref, ref_info = plain.reset(seed=3)
    assert np.array_equal(obs, ref) and np.allclose(info["task_estimate"], info["task"]["state"])
    state = model.with_point(model.initial(1, torch.tensor([info["task"]["state"]], dtype=torch.float32)),
                             torch.tensor([info["task"]["state"]], dtype=torch.float32))
    engine_rewards = []
    for a in (1, 4, 1, 6, 0, 3):
        frame = obs
        obs, r, term, trunc, info = env.step(a)
        ref, ref_r, ref_term, *_ = plain.step(a)
        assert np.array_equal(obs, ref) and info["engine_reward"] == ref_r and info["engine_terminated"] == ref_term
        z = sampler.encode(np.stack([frame, obs]))[0].float()
        flat = torch.from_numpy(flatten_action(sampler.meta["action_spec"], env.env.action_space,
                                               env.table[a]))[None] / sampler.model.action_scale
        want, want_term, state = model.predict(z[:1], z[1:], flat, state)
        assert r == pytest.approx(float(want[0]), abs=1e-6) and term == (bool(want_term[0]) or ref_term)
        engine_rewards.append(ref_r)
        if term or trunc:
            break
    assert any(x != 0 for x in engine_rewards)  # the engine paid something the model was asked to replace
    with pytest.raises(InputError, match="frames"):
        LearnedReward(gym.make("worldsim/Voxel-v0", task="navigate", width=48, height=48), sampler, model)
    with pytest.raises(InputError, match="no reward model"):
        LearnedReward.parts(runs["dit"], None)

    mod = _rl_dream()
    argv = ["--checkpoint", runs["dit"], "--reward", str(reward), "--store", runs["store"], "--steps", "32",
            "--n-envs", "2", "--n-steps", "16", "--eval-episodes", "1", "--max-steps", "6", "--dream-steps", "1",
            "--policy", "MlpPolicy", "--seeds", "0", "--goal-distance", "3", "6", "--learned-engine"]
    res = mod.main([*argv, "--out", str(tmp_path / "learned.json")])
    row = "PPO (engine, learned reward)"
    assert set(res["summary"]) == {"random", "PPO (dream)", "PPO (engine)", row}
    assert res["seeds"]["0"][row]["train"]["steps"] == 32 and "learned_gain_ratio" in res["target"]
    goal = mod.make_engine((32, 32), mod.parse_args([*argv, "--observe", "goal"]), learned=(sampler, model))
    seen, info = goal.reset(seed=1)
    assert np.allclose(seen, np.asarray(info["task_estimate"]) / 10)  # the learned agent sees the model's goal
    # the model's end ends the episode unless told otherwise (ends=False: benchmarks/reward_engine.py scores whole
    # engine episodes); a threshold of 0 makes it end every step
    eager = LearnedReward(_engine(max_steps=5), sampler, model, threshold=0.0)
    eager.reset(seed=2)
    assert eager.step(noop_action(eager.action_space))[2] is True
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reward_engine.py"
    spec = importlib.util.spec_from_file_location("reward_engine", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    whole = LearnedReward(_engine(max_steps=5), sampler, model, threshold=0.0, ends=False)
    ep = bench.play(whole, bench.policy("random", whole, np.random.default_rng(0)), seed=2)
    assert len(ep["model"]) == 5 and all(ep["term"]) and len(ep["goal_err"]) == 1
    line = bench.row("random", [ep, ep])
    assert line.startswith("| random | 10 |") and line.count("|") == 15
    # the tracked point's own distance change and forward step beside the engine's, per step; the actions taken
    assert all(len(ep[k]) == 5 for k in ("closer_true", "closer_est", "fwd_true", "fwd_est", "action"))
    shaping = np.asarray(ep["arrive"]) == 0  # navigate pays 0.05 a block closer: the true change is the engine's
    assert np.allclose(np.asarray(ep["engine"])[shaping], 0.05 * np.asarray(ep["closer_true"])[shaping], atol=1e-5)
    rows = bench.by_action([ep], [bench.label(e) for e in NAVIGATE])
    assert len(rows) == len(NAVIGATE) and rows[0].startswith("| no-op |") and "yaw +15" in rows[4]
    assert sum(int(r.split("|")[2]) for r in rows) == 5


@pytest.mark.parametrize("script", ["benchmarks/reward_engine.py", "examples/rl_dream.py"])
def test_bad_checkpoint_is_one_line(script, tmp_path):
    """A checkpoint path that is not a run: one line naming it and a non-zero exit, no traceback, nothing written."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out.json"
    argv = [sys.executable, str(root / script), "--checkpoint", str(tmp_path / "missing")]
    argv += ["--out", str(out)] if "rl_dream" in script else []
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"{Path(script).name}: no checkpoint at {tmp_path / 'missing'}"]
    assert not out.exists()
