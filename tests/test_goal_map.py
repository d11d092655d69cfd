"""Goal maps (worldsim/model/goal_map.py): where navigate's pillar appears, painted for the DiT; fine-tuning a world
model to read them; DreamCore feeding them (docs/world_model.md, "Goal-conditioned dreams")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from voxel_helpers import make_voxel
from wm_helpers import one_line_error

from datagen.rollout import flat_action
from worldsim.cli import main as cli
from worldsim.dream.core import DreamCore
from worldsim.model.dit import DiT, DiTConfig
from worldsim.model.goal_map import paint, prior, window_maps
from worldsim.model.sampler import WorldSampler

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _magenta(frame: np.ndarray, factor: int) -> np.ndarray:
    """The pillar's pixels (as benchmarks/goal_dream.py finds them), as a share of each factor x factor cell."""
    f = frame.astype(np.int16)
    m = ((f[..., 0] - f[..., 1] > 60) & (f[..., 2] - f[..., 1] > 60)).astype(np.float32)
    h, w = m.shape
    return m.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def test_the_map_puts_the_pillar_where_the_engine_draws_it_and_the_turn_moves_it():
    """The engine's navigate episode, turned in 15-degree steps: wherever the pillar is in view, the painted
    column's centre is within a latent pixel of the engine's magenta pixels; each turn moves the task state as
    `prior` says (the engine does not walk here, so the turn is all of the change)."""
    env = make_voxel(task="navigate", width=64, height=64, goal_distance=(4.0, 8.0), animals=False,
                     start_hours=12.0)
    obs, info = env.reset(seed=3)
    yaw = env.action_space.spaces["camera"]
    keys = ["forward", "back", "left", "right", "jump", "sneak", "sprint", "attack", "use", "camera_pitch",
            "camera_yaw", "hotbar"]
    compared = 0
    for _ in range(24):
        state = torch.tensor(info["task"]["state"])
        maps = paint(state, torch.tensor(True), 16, 16, env.fov)
        assert torch.all(maps[1] == 1.0)
        seen = _magenta(obs, 4)
        if seen.sum() > 1.0 and state[0] > 1.0:
            cols = np.arange(16)
            engine_centre = (seen.sum(0) * cols).sum() / seen.sum()
            painted = maps[0].sum(0).numpy()
            assert abs((painted * cols).sum() / painted.sum() - engine_centre) < 1.0
            compared += 1
        action = {k: np.zeros(s.shape, s.dtype) if hasattr(s, "shape") else 0
                  for k, s in env.action_space.spaces.items()}
        action["camera"] = np.array([0.0, 15.0], yaw.dtype)
        flat = torch.from_numpy(np.asarray(flat_action(env, action), np.float32))
        obs, _, _, _, info = env.step(action)
        turned = prior(state, flat, keys.index("camera_yaw"))
        torch.testing.assert_close(turned, torch.tensor(info["task"]["state"]), atol=0.05, rtol=0.0)
    assert compared >= 2  # a full turn shows the pillar in several frames
    env.close()


def test_paint_prior_and_window_maps():
    ahead = paint(torch.tensor([[5.0, 0.0], [-5.0, 0.0], [5.0, 2.0]]), torch.tensor([True, True, False]), 16, 16, 70.0)
    cover = ahead[0, 0]
    assert cover.sum() > 0 and torch.equal(cover, cover.flip(1))  # straight ahead: centred
    assert ahead[1, 0].sum() == 0 and torch.all(ahead[1, 1] == 1)  # behind: not drawn, but known
    assert torch.all(ahead[2] == 0)  # unknown: both channels zero
    right = paint(torch.tensor([4.0, 1.5]), torch.tensor(True), 16, 16, 70.0)[0]
    assert right[:, 8:].sum() > 0 and right[:, :8].sum() == 0
    near, far = (paint(torch.tensor([d, 0.0]), torch.tensor(True), 16, 16, 70.0)[0].sum() for d in (3.0, 9.0))
    assert near > 2 * far  # closer: bigger
    # a turn to the right by 90 degrees puts a goal ahead on the left
    torch.testing.assert_close(prior(torch.tensor([5.0, 0.0]), torch.tensor([90.0]), 0), torch.tensor([0.0, -5.0]),
                               atol=1e-5, rtol=0)
    assert torch.equal(prior(torch.tensor([5.0, 1.0]), torch.tensor([90.0]), -1), torch.tensor([5.0, 1.0]))
    states = torch.tensor([[[5.0, 0.0], [5.0, 0.0], [4.0, 1.0]]])
    acts = torch.tensor([[[0.0], [30.0], [0.0]]])
    maps = window_maps(states, acts, torch.tensor([True]), 16, 16, 70.0, 0)
    torch.testing.assert_close(maps[0, 0], paint(states[0, 0], torch.tensor(True), 16, 16, 70.0))  # its own
    turned = prior(states[0, 1], acts[0, 1], 0)
    torch.testing.assert_close(maps[0, 2], paint(turned, torch.tensor(True), 16, 16, 70.0))  # the previous, turned
    assert math.isclose(float(turned[1]), -5.0 * math.sin(math.radians(30.0)), abs_tol=1e-5)


def _cond(b: int, t: int) -> dict[str, torch.Tensor]:
    return {"actions": torch.zeros(b, t, 3), "action_mask": torch.ones(b, t, dtype=torch.bool),
            "text": torch.zeros(b, 1, 16), "text_mask": torch.ones(b, 1, dtype=torch.bool),
            "text_pooled": torch.zeros(b, 16)}


def test_a_new_goal_model_starts_as_its_parent_and_draws_the_goal_into_the_base():
    """Zero-initialised, the goal embedding changes nothing: given no map, or a map whose goal is behind the camera,
    the goal model is its parent. Where a map covers, the frame's base is moved towards the goal latent by the
    coverage (and no longer counts as the previous frame's there)."""
    torch.manual_seed(0)
    base = DiT(DiTConfig(width=32, depth=1, heads=2, prev_frame=True, warp=True), 4, 3, 16)
    goal = DiT(DiTConfig(width=32, depth=1, heads=2, prev_frame=True, warp=True, goal_map=True), 4, 3, 16)
    with torch.no_grad():
        for p in base.parameters():  # untrained adaLN-Zero outputs are zero: perturb every weight
            p.add_(0.1 * torch.randn(p.shape))
        goal.load_state_dict({**goal.state_dict(), **base.state_dict()})
        goal.goal_latent.copy_(torch.tensor([3.0, -2.0, 1.0, 0.5]))
    x, t = torch.randn(2, 3, 4, 8, 8), torch.rand(2, 3)
    ahead = paint(torch.tensor([2.0, 0.0]).expand(2, 3, 2), torch.ones(2, 3, dtype=torch.bool), 8, 8, 70.0)
    behind = paint(torch.tensor([-2.0, 0.0]).expand(2, 3, 2), torch.ones(2, 3, dtype=torch.bool), 8, 8, 70.0)
    cond = {**_cond(2, 3), "prev": torch.randn(2, 4, 8, 8)}
    with torch.no_grad():
        plain = base(x, t, cond)
        torch.testing.assert_close(goal(x, t, cond), plain)
        torch.testing.assert_close(goal(x, t, {**cond, "goal": behind}), plain)
        assert not torch.allclose(goal(x, t, {**cond, "goal": ahead}), plain)
        was, now = base.frame_bases(x, cond), goal.frame_bases(x, {**cond, "goal": ahead})
    cover = ahead[:, :, :1]
    assert cover.max() == 1.0 and cover.min() == 0.0
    torch.testing.assert_close(now.base, was.base + cover * (goal.goal_latent[:, None, None] - was.base))
    assert torch.equal(now.from_prev, was.from_prev & (cover < 0.5))


def test_fine_tuning_adds_goal_maps_and_the_dream_feeds_them(tiny_pipeline, tmp_path, capsys):
    """`worldsim train init=RUN model.goal_map=true`: the parent (no goal maps) loads, the new embedding starts at
    zero, the stores' camera_yaw column turns the goal. DreamCore then paints each context frame's map from the
    store's task state and each new frame's from the goal it is given; with `goal_maps` off every map is unknown;
    the same seed makes the same frames, and the maps change them."""
    from datagen.job import run
    from datagen.rollout import Job
    from store import read_episode

    out = tmp_path / "goal"
    store = tmp_path / "close"  # goals 3-4 blocks away, the solver walking to them: frames that show the pillar
    run(Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": "navigate", "goal_distance": [3.0, 4.0]}, width=32,
            height=32, episodes=2, steps=12, seed=0, policy="solver"), str(store), workers=1)
    args = [f"init={tiny_pipeline['causal']}", f"vae={tiny_pipeline['vae']}", f"out={out}", "steps=2", "frames=4",
            "batch_size=2", "warmup=1", "device=cpu", "val_episodes=0", "model.goal_map=true", "goal_weight=4"]
    assert cli(["train", f"store={store}", *args]) == 0
    s = WorldSampler.load(out)
    dit = s.model.spec.dit
    assert dit.goal_map and dit.goal_yaw == s.meta["action_spec"]["flat_keys"].index("camera_yaw")
    assert s.model.dit.goal_latent.abs().sum() > 0  # the pillar's look, from the frames that show it
    assert s.meta["train"]["goal_weight"] == 4  # the loss weighed where the map covers (a training setting)
    # the session's store: goals 12-32 blocks away at 32 px, never a latent pixel of pillar: refused, one line
    err = one_line_error(capsys, cli, ["train", f"store={tiny_pipeline['store']}", *args[:2],
                                       f"out={tmp_path / 'far'}", *args[3:]])
    assert "no frame of the stores shows the goal pillar" in err
    with torch.no_grad():  # two training steps barely move it: make the maps matter
        s.model.dit.goal_in.weight.add_(torch.randn(s.model.dit.goal_in.weight.shape))
    ep = read_episode(str(store), 0)
    frames, acts, goals = ep["frames"][:3], ep["actions"][:3], ep["task_state"][:3]

    def dream(maps: bool, goal: np.ndarray | None, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        core = DreamCore(s, 1, steps=2, context=3, precision="fp32")
        core.goal_maps = maps
        core.reset_rows([0], [frames], [acts], [""], [7], [goals])
        out = [core.step(torch.from_numpy(ep["actions"][2 + k : 3 + k]),
                         None if goal is None else torch.from_numpy(goal[None]), np.array([True])) for k in range(n)]
        return torch.stack(out), core.goal.clone()

    with_maps, g = dream(True, np.array([3.0, 0.0], np.float32))
    assert torch.all(g[:, :, 1] == 1) and g[0, -1, 0].sum() > 0  # every frame's goal known, the new one drawn
    assert torch.equal(with_maps, dream(True, np.array([3.0, 0.0], np.float32))[0])  # same seed, same frames
    unknown, g_off = dream(False, np.array([3.0, 0.0], np.float32))
    assert torch.all(g_off == 0) and not torch.equal(unknown, with_maps)
    assert not torch.equal(dream(True, np.array([3.0, 2.0], np.float32))[0], with_maps)  # another goal, other frames
    _, g_none = dream(True, None, 1)
    assert torch.all(g_none[0, -1] == 0) and torch.all(g_none[0, 0, 1] == 1)  # new frames unknown, context known


def test_goal_weight_weighs_the_loss_where_the_map_covers(tiny_pipeline, tmp_path, capsys):
    """goal_weight: 1 + weight x the goal's cover grown by one latent pixel, 1 where the goal is unknown or out of
    view; refused in one line when negative or on a model without goal maps."""
    from worldsim.train.train_dit import goal_weights

    known = torch.tensor([True, False])
    point = torch.tensor([[[4.0, 0.0], [4.0, 0.0]], [[4.0, 0.0], [4.0, 0.0]]])  # (B, T, 2): 4 blocks ahead
    maps = paint(point, known[:, None].expand(2, 2), 8, 8, 70.0)  # (B, T, 2, h, w)
    w = goal_weights(maps, 3.0)
    assert w.shape == (2, 2, 1, 8, 8)
    assert torch.all(w[1] == 1)  # the goal unknown: the plain loss
    cover = maps[0, 0, 0]
    assert cover.max() > 0 and torch.isclose(w[0, 0, 0].max(), 1 + 3 * cover.max())
    grown = torch.nn.functional.max_pool2d(cover[None, None], 3, 1, 1)[0, 0]
    assert torch.allclose(w[0, 0, 0], 1 + 3 * grown)
    assert torch.all(w[0, 0, 0][grown == 0] == 1) and (w[0, 0, 0] > 1).sum() > (cover > 0).sum()  # one pixel wider
    base = [f"init={tiny_pipeline['causal']}", f"store={tiny_pipeline['store']}", f"vae={tiny_pipeline['vae']}",
            "steps=1", "frames=4", "device=cpu", "val_episodes=0"]
    err = one_line_error(capsys, cli, ["train", *base, f"out={tmp_path / 'a'}", "goal_weight=4"])
    assert "goal_weight" in err and "model.goal_map=true" in err
    err = one_line_error(capsys, cli, ["train", *base, f"out={tmp_path / 'b'}", "goal_weight=-1",
                                       "model.goal_map=true"])
    assert "goal_weight must be >= 0" in err
    err = one_line_error(capsys, cli, ["train", *base[1:], f"out={tmp_path / 'c'}", "goal_weight=4"])  # no init
    assert "goal_weight" in err and "model.goal_map=true" in err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_windows_carry_the_task_state_and_goal_maps_refuse_stores_without_it(tiny_pipeline, tmp_path, capsys):
    from wm_helpers import tiny_store

    from store import read_episode
    from worldsim.train.data import StoreSet

    stores = StoreSet([str(tiny_pipeline["store"])], 4)
    item = stores.read(5)
    batch = stores.batch(np.random.default_rng(0), 3)
    assert batch["task_state"].shape == (3, 4, 2) and batch["task_state"].dtype == torch.float32
    ep = read_episode(str(tiny_pipeline["store"]), item["episode"])
    assert np.array_equal(item["task_state"], ep["task_state"][item["start"] : item["start"] + 4])
    explore = tmp_path / "explore"
    tiny_store(explore, episodes=1, steps=8, seed=0, task="explore")
    err = one_line_error(capsys, cli, ["train", f"init={tiny_pipeline['causal']}", f"store={explore}",
                                       f"vae={tiny_pipeline['vae']}", f"out={tmp_path / 'g'}", "steps=1", "frames=4",
                                       "device=cpu", "val_episodes=0", "model.goal_map=true"])
    assert "model.goal_map=true" in err and "goal_forward" in err


def test_goal_dream_scores_the_goal_estimates_tracking():
    """benchmarks/goal_dream.py's goal and move error columns (`tracking`): an estimate that follows the engine
    exactly scores 0; one whose odometry walks half the engine's step (the regression to the mean the columns are
    for) scores the missing half-step as its move error, its own forward step half the engine's, and a goal error
    that grows along the dream."""
    import importlib.util
    from pathlib import Path

    from worldsim.model.reward import RewardModel

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "goal_dream.py"
    spec = importlib.util.spec_from_file_location("goal_dream", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    g = torch.Generator().manual_seed(0)
    yaw = (torch.rand(12, generator=g) * 40 - 20).numpy().astype(np.float32)  # degrees a step
    turn = torch.deg2rad(torch.from_numpy(yaw))

    def walk(forward: float) -> np.ndarray:
        points = [torch.tensor([[6.0, -2.0]])]
        for k in range(12):
            step = torch.tensor([[float(turn[k]), forward, 0.0]])
            points.append(RewardModel.move(points[-1], step))
        return torch.cat(points).numpy()

    truth, short = walk(0.2), walk(0.1)
    exact = bench.tracking(truth, truth, yaw)
    assert max(exact["goal_err"]) < 1e-5 and max(exact["move_err"]) < 1e-5
    off = bench.tracking(short, truth, yaw)
    assert np.allclose(off["move_err"], 0.1, atol=1e-4)
    assert np.isclose(np.mean(off["step_est"]), 0.1, atol=1e-4) and np.isclose(np.mean(off["step_true"]), 0.2,
                                                                               atol=1e-4)
    assert off["goal_err"][-1] > off["goal_err"][0] > 0
