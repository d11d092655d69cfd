"""Any gymnasium game as a data source (datagen/games.py): Atari and ViZDoom end to end, a Box-action game rendered
with render(), a Dict-action game by `module:EnvId`, exact action-spec round trips, replays, a tiny DreamEnv over
an Atari store, and the refusals (unknown id, missing package, no frames, a Text action space)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import toy_games
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from wm_helpers import TINY_VAE, one_line_error, train_args

from datagen.games import GameError, GameSource, PPODataPolicy, register_game, train_data_policy
from datagen.job import run
from datagen.rollout import Job, episode_seed, make_env
from store import read_episode, validate
from store.spaces import flat_size, flatten_action, space_from_spec, spec_from_space, unflatten_action
from worldsim.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BREAKOUT = {"repeat_action_probability": 0.0}


def _gen(tmp_path, env_id: str, kwargs=None, name: str = "store", episodes: int = 2, steps: int = 12,
         width=None, height=None, seed: int = 0):
    job = Job(env_id=env_id, env_kwargs=dict(kwargs or {}), width=width, height=height, episodes=episodes,
              steps=steps, seed=seed, policy="random")
    return job, run(job, str(tmp_path / name), workers=1)


def _replay(job: Job, url: str, index: int) -> None:
    """The stored actions, replayed from the episode's seed in a fresh env, give the stored frames."""
    ep = read_episode(url, index)
    src = make_env(job)
    space = space_from_spec(ep["action_spec"])
    frame, _ = src.reset(seed=episode_seed(job.seed, index))
    assert np.array_equal(frame, ep["frames"][0])
    for t in range(len(ep["frames"]) - 1):
        frame, *_ = src.step(unflatten_action(ep["action_spec"], space, ep["actions"][t]))
        assert np.array_equal(frame, ep["frames"][t + 1]), f"step {t}"
    src.close()


@pytest.mark.parametrize("space", [
    spaces.Discrete(4), spaces.Discrete(3, start=-1), spaces.Discrete(2), spaces.MultiDiscrete([[2, 3], [4, 5]]),
    spaces.MultiBinary([2, 3]), spaces.Box(0, 255, (3,), np.uint8),
    spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, np.inf], np.float32)),
    spaces.Tuple([spaces.Discrete(5), spaces.Box(-2.0, 2.0, (1,), np.float32)]),
    spaces.Dict({"move": spaces.Discrete(3), "fire": spaces.MultiBinary(2), "aim": spaces.Box(-1, 1, (2,))}),
])
def test_the_spec_rebuilds_the_exact_space_and_actions_round_trip(space):
    spec = json.loads(json.dumps(spec_from_space(space)))  # what a store holds
    rebuilt = space_from_spec(spec)
    assert rebuilt == space
    assert len(spec["flat_keys"]) == flat_size(spec)
    space.seed(0)
    for _ in range(20):
        a = space.sample()
        vec = flatten_action(spec, rebuilt, a)
        assert vec.shape == (flat_size(spec),) and vec.dtype == np.float32
        back = unflatten_action(spec, rebuilt, vec)
        assert rebuilt.contains(back)
        assert np.array_equal(flatten_action(spec, rebuilt, back), vec)


def test_discrete_actions_of_other_games_are_one_hot():
    spec = spec_from_space(spaces.Discrete(4), labels=["NOOP", "FIRE", "RIGHT", "LEFT"])
    assert spec["flat_keys"] == ["action_NOOP", "action_FIRE", "action_RIGHT", "action_LEFT"]
    assert flatten_action(spec, spaces.Discrete(4), 2).tolist() == [0, 0, 1, 0]
    assert unflatten_action(spec, spaces.Discrete(4), np.array([0.1, 0.2, 0.9, 0.3])) == 2
    from worldsim.eval.probes import action_columns

    assert [kind for _, kind, _ in action_columns(spec, 4)] == ["binary"] * 4  # the IDM scores each value by F1
    with pytest.raises(ValueError, match="Text action space"):
        spec_from_space(spaces.Text(5))


def test_atari_end_to_end(tmp_path):
    job, attrs = _gen(tmp_path, "ALE/Breakout-v5", BREAKOUT, width=64, height=64)
    url = str(tmp_path / "store")
    report = validate(url)
    assert report["episodes"] == 2
    assert space_from_spec(attrs["action_spec"]) == spaces.Discrete(4)
    assert attrs["action_spec"]["flat_keys"] == ["action_NOOP", "action_FIRE", "action_RIGHT", "action_LEFT"]
    game = attrs["game"]
    assert game["package"] == "ale-py" and game["rom"] == "breakout" and game["deterministic"] is True
    assert game["kwargs"] == BREAKOUT and game["env_id"] == "ALE/Breakout-v5"
    ep = read_episode(url, 0)
    assert ep["frames"].shape == (13, 64, 64, 3) and ep["actions"].shape == (13, 4)
    assert ep["episode_dense"].startswith("Breakout gameplay, 12 steps.")
    card = (tmp_path / "store" / "DATASET.md").read_text()
    assert "package ale-py" in card and "deterministic replay: True" in card
    assert "third-party content" in attrs["licence"] and "procedurally generated" not in card
    _replay(job, url, 1)
    _, again = _gen(tmp_path, "ALE/Breakout-v5", BREAKOUT, name="again", width=64, height=64)
    assert again["digest"] == attrs["digest"]  # same job, same bytes


def test_native_size_by_default_and_resized_whole_on_request():
    native = GameSource.make("ALE/Breakout-v5", BREAKOUT)
    frame, _ = native.reset(seed=0)
    assert frame.shape == (210, 160, 3)
    small = GameSource.make("ALE/Breakout-v5", BREAKOUT, width=80, height=105)
    half, _ = small.reset(seed=0)
    assert half.shape == (105, 80, 3)
    # the area filter keeps the whole picture: each pixel is the mean of a 2x2 block of the native frame
    want = frame.reshape(105, 2, 80, 2, 3).mean(axis=(1, 3))
    assert np.abs(half.astype(float) - want).max() <= 1.0
    native.close()
    small.close()


def test_vizdoom_end_to_end(tmp_path):
    job, attrs = _gen(tmp_path, "VizdoomBasic-v1", width=64, height=48, steps=8)
    url = str(tmp_path / "store")
    validate(url)
    assert attrs["game"]["scenario"] == "basic.wad" and attrs["game"]["package"] == "vizdoom"
    assert read_episode(url, 0)["frames"].shape[1:] == (48, 64, 3)
    _replay(job, url, 0)


def test_a_box_action_game_rendered_with_render(tmp_path):
    job, attrs = _gen(tmp_path, "toy_games:ToyRender-v0")
    assert attrs["game"]["observation"] == "render(rgb_array)"
    assert space_from_spec(attrs["action_spec"]) == spaces.Box(np.array([-1.0, 0.0], np.float32),
                                                               np.array([1.0, np.inf], np.float32))
    assert read_episode(str(tmp_path / "store"), 0)["frames"].shape == (13, 24, 32, 3)  # native size


def test_a_dict_action_game_by_module_and_id(tmp_path):
    job, attrs = _gen(tmp_path, "toy_games:ToyDict-v0", {"size": 16}, steps=20)
    url = str(tmp_path / "store")
    validate(url)
    space = space_from_spec(attrs["action_spec"])
    assert space == toy_games.ToyDictEnv().action_space
    ep = read_episode(url, 0)
    assert ep["actions"].shape == (21, 2 + 2 + 3)  # aim (2), fire (2), move one-hot (3)
    assert all(e["type"] in ("reward", "life_lost") for e in ep["events"])
    assert any(e["type"] == "life_lost" for e in ep["events"])
    _replay(job, url, 0)


def test_a_ppo_data_policy_is_trained_in_the_game_then_recorded_deterministically(tmp_path):
    def job(name: str, epsilon: float = 0.1):
        j = Job(env_id="ALE/Breakout-v5", env_kwargs=BREAKOUT, width=40, height=40, episodes=2, steps=10, seed=3,
                policy="ppo", ppo_steps=64, ppo_epsilon=epsilon)
        return j, run(j, str(tmp_path / name), workers=1)

    j, a = job("a")
    _, b = job("b")
    assert a["digest"] == b["digest"]  # same job: the same PPO weights, the same episodes
    assert a["job"]["ppo_steps"] == 64 and a["job"]["ppo_epsilon"] == 0.1
    greedy, _ = job("greedy", epsilon=0.0)
    # epsilon 0: every recorded action is the trained policy's greedy action on the recorded frame
    policy = PPODataPolicy(np.random.default_rng(0), make_env(greedy),
                           dataclasses.replace(greedy, ppo_state=train_data_policy(greedy)))
    ep = read_episode(str(tmp_path / "greedy"), 0)
    spec, space = ep["action_spec"], space_from_spec(ep["action_spec"])
    for t in range(len(ep["frames"]) - 1):
        assert np.array_equal(flatten_action(spec, space, policy.act_on(ep["frames"][t], {})), ep["actions"][t])
    _replay(j, str(tmp_path / "a"), 1)
    plain = Job(env_id="ALE/Breakout-v5", env_kwargs=BREAKOUT, width=40, height=40, episodes=2, steps=10, seed=3)
    assert "ppo_steps" not in plain.content_key()  # other jobs keep their keys (and resume as before)


def test_a_tiny_dream_of_an_atari_store_has_the_games_spaces(tmp_path):
    from worldsim.dream.env import DreamEnv

    _gen(tmp_path, "ALE/Breakout-v5", BREAKOUT, episodes=3, steps=10, width=32, height=32)
    store, vae, dit = tmp_path / "store", tmp_path / "vae", tmp_path / "dit"
    assert cli(["train-vae", f"store={store}", f"out={vae}", "steps=2", "batch_size=4", "eval_every=2",
                "save_every=2", "val_windows=2", "warmup=1", "device=cpu", *TINY_VAE]) == 0
    assert cli(train_args(store, vae, dit, 2, "model.attention=causal")) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no reward model: rewards are 0
        env = DreamEnv.from_checkpoint(dit, precision="fp32")
    assert env.action_space == spaces.Discrete(4)
    assert env.observation_space == spaces.Box(0, 255, (32, 32, 3), np.uint8)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    obs, reward, *_ = env.step(1)
    assert obs.shape == (32, 32, 3) and reward == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        venv = gym.make_vec("worldsim/Dream-v0", num_envs=2, vectorization_mode="vector_entry_point",
                            checkpoint=str(dit), precision="fp32")
    venv.reset(seed=0)
    obs, *_ = venv.step(np.array([1, 3]))
    assert obs.shape == (2, 32, 32, 3)
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    # stable-baselines3 PPO runs inside the dream of Breakout with the game's own Discrete(4) actions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = DreamEnv.from_checkpoint(dit, precision="fp32", max_episode_steps=8)
    agent = PPO("MlpPolicy", DummyVecEnv([lambda: env]), n_steps=16, batch_size=8, n_epochs=1, seed=0,
                device="cpu")
    from stable_baselines3.common.logger import Logger

    agent.set_logger(Logger(folder=None, output_formats=[]))  # no empty SB3 folder left in /tmp
    agent.learn(total_timesteps=16)
    action, _ = agent.predict(env.reset(seed=1)[0], deterministic=True)
    assert env.action_space.contains(int(action))


def test_refusals_are_one_line_errors_before_anything_is_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    err = one_line_error(capsys, cli, ["generate", "env=NoSuchGame-v0", f"out={out}"])
    assert "unknown env id 'NoSuchGame-v0'" in err and "module:EnvId" in err
    err = one_line_error(capsys, cli, ["generate", "env=toy_games:ToyText-v0", f"out={out}"])
    assert "Text action space" in err
    err = one_line_error(capsys, cli, ["generate", "env=toy_games:ToyNoFrames-v0", f"out={out}"])
    assert "not an RGB image" in err
    err = one_line_error(capsys, cli, ["generate", "env=ALE/Breakout-v5", "policy=solver", f"out={out}"])
    assert "policy 'solver'" in err
    assert not out.exists()
    import datagen.games as G

    monkeypatch.setattr(G, "GAME_PACKAGES", [("Fake-", "no_such_game_module", "fake-game"), *G.GAME_PACKAGES])
    with pytest.raises(GameError, match=r"needs the game package 'fake-game'.*worldsim\[games\]"):
        register_game("Fake-Game-v0")


RECIPES = sorted(p.stem for p in (Path(__file__).parents[1] / "configs" / "recipe").glob("*.yaml"))


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_config_composes_its_stages(name):
    """Each reference recipe (configs/recipe/) composes, and its data stages name an env `generate` can make."""
    from worldsim.cli import compose
    from worldsim.cli.recipe import overrides

    r = compose("recipe", [f"recipe={name}"]).recipe
    for stage in ("generate", "heldout"):
        gen = compose("generate", [*overrides(r[stage]), "out=/nonexistent"])
        env = str(r[stage].env)
        assert gen.env.id == ({"voxel": "worldsim/Voxel-v0", "physics": "worldsim/Physics-v0"}.get(env, env))
    for command, stage in (("train-vae", "train_vae"), ("train", "train"), ("eval", "eval")):
        compose(command, [*overrides(r[stage]), *(overrides(r.model, "model.") if stage == "train" else [])])
