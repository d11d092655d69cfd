"""DreamEnv / DreamVectorEnv: the gymnasium contract, the engine's spaces, the KV cache, resets, autoreset, determinism.

Tiny untrained checkpoints (a navigate store at 32 px, a VAE and a frame-causal DiT trained for a few steps, and a
reward model), built once per module. Untrained weights are enough: these tests are about the env's behaviour.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import worldsim
from store import read_episode
from worldsim.cli import main as cli
from worldsim.dream.core import DreamCore
from worldsim.dream.env import DreamEnv, DreamVectorEnv
from worldsim.model.sampler import WorldSampler

# tiny tensors gain nothing from threads, and on shared cores OpenMP threads spin against other processes
pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def runs(tiny_pipeline, tmp_path_factory):
    """The session's tiny pipeline; the frame-causal run is copied here and given a reward model."""
    causal = tmp_path_factory.mktemp("dream") / "causal"
    shutil.copytree(tiny_pipeline["causal"], causal)
    store = tiny_pipeline["store"]
    assert cli(["train-reward", f"ckpt={causal}", f"store={store}", "steps=2", "batch_size=8", "device=cpu"]) == 0
    return {"store": str(store), "causal": str(causal), "full": str(tiny_pipeline["full"]),
            "memory": str(tiny_pipeline["memory"])}


def _env(runs, **kw) -> DreamEnv:
    return DreamEnv.from_checkpoint(runs["causal"], precision="fp32", **kw)


def test_passes_check_env_and_has_the_engines_spaces(runs):
    import envs  # noqa: F401  (the engine, to compare spaces)

    env = gym.make("worldsim/Dream-v0", checkpoint=runs["causal"])
    check_env(env.unwrapped, skip_render_check=True)
    engine = gym.make("worldsim/Voxel-v0", width=32, height=32)
    assert env.action_space == engine.action_space
    assert env.observation_space == engine.observation_space
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    assert worldsim.DreamEnv is DreamEnv


def _perturbed(run: str) -> WorldSampler:
    s = WorldSampler.load(run)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # untrained adaLN-Zero blocks are the identity: perturb every weight
        for p in s.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return s


@pytest.mark.parametrize("run", ["causal", "memory"])
def test_kv_cache_matches_recomputing_the_window(runs, run):
    """A frame-causal model stepped with cached keys/values equals the same model recomputing the whole window
    (with memory too: each frame's recalled memory goes with it into the cache)."""
    s = _perturbed(runs[run])
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    acts = rng.random((4, s.action_dim)).astype(np.float32)
    made = []
    for cached in (True, False):
        core = DreamCore(s, 2, steps=3, context=3, precision="fp32")
        core.cached = cached
        core.reset_rows([0, 1], [frames, frames[:2]], [acts, None], ["a forest", ""], [5, 6])
        made.append(torch.stack([core.step(torch.from_numpy(acts[:2])) for _ in range(4)]))
    assert made[0].abs().mean() > 0.1
    torch.testing.assert_close(made[0], made[1], atol=1e-2, rtol=1e-2)


def test_the_dream_recalls_the_view_it_turned_away_from(runs):
    """DreamCore's memory bank: after turning away for 4 steps and back for 4 (any warp of a model with memory
    chains a turn and its opposite to the identity), the new frame recalls the frame it left, exactly and with full
    coverage; halfway back it recalls the outward frame of the same pose."""
    s = _perturbed(runs["memory"])
    keys = s.meta["action_spec"]["flat_keys"]
    turn = torch.zeros(1, s.action_dim)
    turn[0, keys.index("camera_yaw")] = 15.0
    assert float((s.model.dit.warp(turn / s.model.action_scale)).abs().max()) > 0.01  # the warp moves the view
    rng = np.random.default_rng(0)
    core = DreamCore(s, 1, steps=1, context=3, precision="fp32")
    core.reset_rows([0], [rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)], [None], [""], [0])
    left = core.last.clone()
    seen = []
    for a in [turn] * 4 + [-turn] * 3:
        seen.append(core.step(a))
    c = s.model.spec.latent_channels
    mem, _ = core._recall(-turn[:, None] / s.model.action_scale)  # the 8th step: back where it started
    torch.testing.assert_close(mem[:, :c], left, atol=1e-4, rtol=1e-4)
    assert float(mem[:, c].min()) == 1.0
    # after 4 out and 2 back, the next step (-turn) has the pose of the first outward frame
    core2 = DreamCore(s, 1, steps=1, context=3, precision="fp32")
    core2.reset_rows([0], [rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)], [None], [""], [0])
    out = [core2.step(a) for a in [turn] * 4 + [-turn] * 2]
    mem2, _ = core2._recall(-turn[:, None] / s.model.action_scale)
    torch.testing.assert_close(mem2[:, :c], out[0], atol=1e-4, rtol=1e-4)


def test_same_seed_same_frames_and_other_seed_other_frames(runs):
    def episode(seed: int) -> list[np.ndarray]:
        env = _env(runs)
        env.action_space.seed(seed)
        out = [env.reset(seed=seed)[0]]
        out += [env.step(env.action_space.sample())[0] for _ in range(3)]
        return out

    a, b, c = episode(1), episode(1), episode(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a[1:], c[1:]))


def test_reset_from_the_held_out_store_by_default_and_from_a_chosen_episode(runs):
    env = _env(runs)
    _, info = env.reset(seed=0)
    assert info["source"] == "store" and info["episode"] == 2  # the held-out episode: the last of the store
    ep = read_episode(runs["store"], 0)
    obs, info = env.reset(seed=0, options={"store": runs["store"], "episode": 0, "start": 5})
    assert (info["episode"], info["start"]) == (0, 5)
    context = env.unwrapped.core.context if hasattr(env, "unwrapped") else env.core.context
    assert np.array_equal(obs, ep["frames"][min(5 + context, len(ep["frames"])) - 1])
    assert info["prompt"] == ep["episode_short"]


def test_reset_from_frames_and_from_a_prompt(runs):
    env = _env(runs)
    image = np.full((32, 32, 3), 90, np.uint8)
    obs, info = env.reset(seed=0, options={"frames": image})
    assert info["source"] == "frames" and np.array_equal(obs, image)
    clip = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    obs, _ = env.reset(seed=0, options={"frames": clip, "prompt": "a forest"})
    assert np.array_equal(obs, clip[-1])
    word = env.sampler.example_prompt().split()[0]
    obs, info = env.reset(seed=0, options={"prompt": word})
    assert info["source"] == "prompt" and obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert env.step(env.action_space.sample())[0].shape == (32, 32, 3)


@pytest.mark.parametrize("options, match", [
    ({"frames": np.zeros((48, 32, 3), np.uint8)}, "model's size"),
    ({"frames": np.zeros((32, 32, 3), np.float32)}, "uint8"),
    ({"prompt": "qwzx vbnm"}, "vocabulary"),
    ({"episode": 99}, "episode 99"),
    ({"colour": "red"}, "unknown reset option"),
])
def test_bad_reset_options_are_clear_errors(runs, options, match):
    env = _env(runs)
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)


def test_actions_outside_the_space_are_clear_errors(runs):
    env = _env(runs)
    env.reset(seed=0)
    good = env.action_space.sample()
    with pytest.raises(ValueError, match="camera"):
        env.step({**good, "camera": np.array([400.0, 0.0], np.float32)})
    with pytest.raises(ValueError, match="hotbar"):
        env.step({**good, "hotbar": 12})
    with pytest.raises(ValueError, match="missing"):
        env.step({"forward": 1})
    with pytest.raises(ValueError, match="'fly'.*that the space does not have"):  # never dropped silently
        env.step({**good, "fly": 1})
    venv = DreamVectorEnv.from_checkpoint(runs["causal"], num_envs=2, precision="fp32")
    venv.reset(seed=0)
    batch = {k: np.stack([v, v]) for k, v in good.items()}
    with pytest.raises(ValueError, match="'fly'"):
        venv.step({**batch, "fly": np.ones(2)})


def test_a_reward_model_of_another_vae_is_refused_when_named(runs, tmp_path):
    from worldsim.model import checkpoint as C

    other = tmp_path / "reward"
    shutil.copytree(Path(runs["causal"]) / "reward", other)
    ck = C.resolve(other)
    meta = json.loads((ck / "meta.json").read_text())
    meta["vae"]["digest"] = "0" * 64
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(C.CheckpointError, match="latents of another VAE"):
        _env(runs, reward=str(other))


def test_rewards_come_from_the_reward_model_and_its_absence_warns(runs):
    env = _env(runs)
    assert env.reward_model is not None  # found in <run>/reward
    env.reset(seed=0)
    r = [env.step(env.action_space.sample())[1] for _ in range(3)]
    assert all(isinstance(x, float) and np.isfinite(x) for x in r)
    with pytest.warns(UserWarning, match="no reward model"):
        bare = DreamEnv.from_checkpoint(runs["full"], precision="fp32")
    bare.reset(seed=0)
    _, reward, terminated, _, _ = bare.step(bare.action_space.sample())
    assert reward == 0.0 and terminated is False


def test_the_reward_state_is_warmed_on_the_context_and_carries_each_dreamed_reward(runs):
    """A reset from a store warms the reward model's state on the context transitions with their recorded rewards
    (the same state as `warm` on those latents); each step carries the reward it returned."""
    from store import read_episode

    env = _env(runs)
    model = env.reward_model
    _, info = env.reset(seed=0, options={"episode": 2, "start": 3})  # the held-out episode of the store
    ep = read_episode(runs["store"], 2)
    n = env.core.context
    frames, acts = ep["frames"][3 : 3 + n], ep["actions"][3 : 3 + n - 1]
    z = env.sampler.encode(frames).float()  # (1, n, C, h, w)
    scaled = torch.from_numpy(np.asarray(acts, np.float32))[None] / env.core.model.action_scale
    recorded = torch.from_numpy(np.asarray(ep["rewards"][3 : 3 + n - 1], np.float32))[None]
    want = model.warm(z, scaled, recorded)
    assert torch.allclose(env.reward_state, want, atol=1e-5)
    assert env.reward_state[0, -1].item() == pytest.approx(float(ep["rewards"][3 + n - 2]))
    _, reward, *_ = env.step(env.action_space.sample())
    assert env.reward_state[0, -1].item() == pytest.approx(reward)
    assert not torch.allclose(model.warm(z, scaled, recorded + 1.0), want)  # the recorded rewards matter


def test_truncation_at_the_horizon(runs):
    env = _env(runs, max_episode_steps=2)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(2)]
    assert flags == [False, True]


def test_vector_env_batches_envs_and_autoresets_on_the_next_step(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        venv = gym.make_vec("worldsim/Dream-v0", num_envs=3, vectorization_mode="vector_entry_point",
                            checkpoint=runs["full"], max_episode_steps=2, precision="fp32")
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, info = venv.reset(seed=4)
    assert obs.shape == (3, 32, 32, 3) and list(info["source"]) == ["store"] * 3
    venv.action_space.seed(0)
    _, _, term, trunc, _ = venv.step(venv.action_space.sample())
    assert not trunc.any()
    _, _, term, trunc, _ = venv.step(venv.action_space.sample())
    assert (term | trunc).all()
    obs, reward, term, trunc, info = venv.step(venv.action_space.sample())  # the autoreset step
    assert (reward == 0).all() and not (term | trunc).any()
    assert list(info["source"]) == ["store"] * 3 and venv.observation_space.contains(obs)
    _, _, _, trunc, _ = venv.step(venv.action_space.sample())
    assert not trunc.any()


def test_vector_env_rows_equal_single_envs_with_consecutive_seeds(runs):
    venv = DreamVectorEnv.from_checkpoint(runs["causal"], num_envs=2, precision="fp32")
    vobs, _ = venv.reset(seed=10)
    action = venv.single_action_space.sample()
    batch = {k: np.stack([np.asarray(v)] * 2) for k, v in action.items()}
    vnext = venv.step(batch)[0]
    for i in range(2):
        env = _env(runs)
        obs, _ = env.reset(seed=10 + i)
        assert np.array_equal(obs, vobs[i])
        nxt = env.step(action)[0]
        assert np.abs(nxt.astype(int) - vnext[i].astype(int)).max() <= 2


def test_a_temporal_vae_is_refused(runs, monkeypatch):
    s = WorldSampler.load(runs["causal"])
    monkeypatch.setattr(s, "k", 4)
    with pytest.raises(ValueError, match="per-frame VAE"):
        DreamCore(s, 1)


def test_play_runs_the_dream_beside_the_engine_headless(runs):
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "worldsim.cli", "play", f"ckpt={runs['causal']}", "max_frames=3",
                        "dream_steps=1", "env.kwargs.task=navigate"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "played 3 frames beside the model" in r.stdout


def test_same_step_autoreset_returns_the_next_first_frame_and_keeps_the_last(runs):
    venv = DreamVectorEnv.from_checkpoint(runs["full"], num_envs=2, max_episode_steps=2, precision="fp32",
                                          autoreset_mode="same_step")
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    venv.reset(seed=0)
    venv.action_space.seed(0)
    _, _, _, trunc, info = venv.step(venv.action_space.sample())
    assert not trunc.any() and "final_obs" not in info
    obs, _, _, trunc, info = venv.step(venv.action_space.sample())
    assert trunc.all() and info["_final_obs"].all()
    assert all(f.shape == (32, 32, 3) for f in info["final_obs"]) and list(info["source"]) == ["store"] * 2
    _, reward, _, trunc, _ = venv.step(venv.action_space.sample())  # a normal step of the new episodes
    assert not trunc.any()
    with pytest.raises(ValueError, match="autoreset_mode"):
        DreamVectorEnv.from_checkpoint(runs["full"], autoreset_mode="sometimes")


def test_gym_make_horizon_is_the_envs_own(runs):
    """gym.make keeps max_episode_steps for its TimeLimit wrapper: a longer horizon than the default 200 is not cut
    short by the env's own limit."""
    env = gym.make("worldsim/Dream-v0", checkpoint=runs["full"], max_episode_steps=203, precision="fp32")
    env.reset(seed=0)
    env.unwrapped.elapsed[:] = 199
    flags = [env.step(env.action_space.sample())[3] for _ in range(4)]  # the wrapper counts from its reset
    assert not any(flags)
    assert gym.make("worldsim/Dream-v0", checkpoint=runs["full"]).spec.max_episode_steps == 200


def _in_memory_core(rows: int) -> DreamCore:
    """A DreamCore of an untrained tiny model built in memory: no store, no checkpoint, no file at all."""
    from worldsim.model.dit import DiTConfig
    from worldsim.model.flow import FlowConfig
    from worldsim.model.vae import VAEConfig, VideoVAE
    from worldsim.model.world_model import ModelSpec, WorldModel

    torch.manual_seed(0)
    spec = ModelSpec(dit=DiTConfig(preset="tiny", depth=2, width=64, heads=2, attention="causal", prev_frame=True),
                     vocab=["<pad>", "<unk>", "<cls>", "walking"], latent_channels=4, action_dim=2,
                     action_scale=[1.0, 1.0])
    vae = VideoVAE(VAEConfig(latent_channels=4, spatial=4, channels=[8, 8, 8]))
    action_spec = {"type": "Dict", "spaces": {"move": {"type": "Discrete", "n": 2},
                                              "turn": {"type": "Box", "low": -1.0, "high": 1.0, "shape": [1]}},
                   "flat_keys": ["move", "turn"]}
    meta = {"frames": 4, "fps": 10, "height": 16, "width": 16, "action_spec": action_spec,
            "train": {"flow": vars(FlowConfig())}}
    sampler = WorldSampler(WorldModel(spec).eval(), vae.eval(), meta, "in-memory", torch.device("cpu"))
    return DreamCore(sampler, rows, steps=2, precision="fp32")


def test_dream_env_is_built_from_parts_in_memory():
    env = DreamEnv(_in_memory_core(1), max_episode_steps=3)
    assert isinstance(env.action_space, gym.spaces.Dict) and env.observation_space.shape == (16, 16, 3)
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    obs, info = env.reset(seed=0, options={"frames": frames})
    assert np.array_equal(obs, frames[-1]) and info["source"] == "frames"
    truncated = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert truncated == [False, False, True]  # the env's own horizon: one owner of truncation
    with pytest.raises(ValueError, match="DreamVectorEnv"):
        DreamEnv(_in_memory_core(2))
    venv = DreamVectorEnv(_in_memory_core(2), max_episode_steps=None)
    obs, _ = venv.reset(seed=0, options={"frames": frames})
    assert obs.shape == (2, 16, 16, 3)


def test_nonsense_values_are_refused_not_replaced():
    core_args = _in_memory_core(1).sampler
    with pytest.raises(ValueError, match="context must be between 1 and 64"):
        DreamCore(core_args, 1, context=0)  # once silently meant "the default"
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="cfg_actions=.* must be a finite number >= 0"):
            DreamCore(core_args, 1, cfg_actions=bad)
