"""Reward and termination model: train-reward end to end, checkpoints, determinism, learning, bad input.

A tiny navigate store (dense shaping rewards), a VAE and a DiT trained for a few steps, built once per module.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from safetensors.torch import load_file
from wm_helpers import one_line_error

from datagen.job import run
from datagen.rollout import Job
from worldsim.cli import main as cli
from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.reward import RewardConfig, RewardModel, find_reward, load_reward, save_reward
from worldsim.train.data import StoreSet
from worldsim.train.train_reward import (
    NO_PAUSE,
    PAUSE_OWN,
    PAUSE_ZERO,
    TrainRewardConfig,
    Transitions,
    calibrate_snap,
    check_stores,
    collect,
    draw_probabilities,
    evaluate,
    fit,
    insert_pauses,
    load_world_vae,
    mean_step,
    paused_task,
    run_episodes,
    still_reward,
    true_moves,
    turn_column,
)

CPU = torch.device("cpu")

# tiny tensors gain nothing from threads, and on shared cores OpenMP threads spin against other processes
pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _store(path: Path, task: str = "navigate", episodes: int = 3, steps: int = 12, width: int = 32) -> Path:
    job = Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": task}, width=width, height=32, episodes=episodes,
              steps=steps, seed=0)
    run(job, str(path), workers=1)
    return path


def _reward_args(ckpt: Path, store: Path, *extra: str) -> list[str]:
    return ["train-reward", f"ckpt={ckpt}", f"store={store}", "steps=12", "batch_size=8", "log_every=4",
            "device=cpu", "model.width=8", "model.depth=2", "model.hidden=16", *extra]




@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("reward")


@pytest.fixture(scope="module")
def store(tiny_pipeline):
    return tiny_pipeline["store"]


@pytest.fixture(scope="module")
def dit_run(root, tiny_pipeline):
    """The session's full-attention run, copied here: train-reward writes into <run dir>/reward."""
    dit = root / "dit"
    shutil.copytree(tiny_pipeline["full"], dit)
    (root / "vae").symlink_to(tiny_pipeline["vae"], target_is_directory=True)
    return dit


@pytest.fixture(scope="module")
def reward_run(dit_run, store):
    """train-reward with the default out (<run dir>/reward) and the JSON line it printed."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(_reward_args(dit_run, store)) == 0
    return dit_run / "reward", json.loads(buf.getvalue().strip().splitlines()[-1])


def test_train_reward_writes_under_the_run_dir_and_is_found(reward_run, dit_run, store):
    out, printed = reward_run
    ck = C.resolve(out)
    assert ck.parent == out / "checkpoints" and (ck / "model.safetensors").is_file()
    assert printed["checkpoint"] == str(ck) and printed["out"] == str(out)
    meta = C.load_meta(ck)
    dit_ck = C.resolve(dit_run)
    assert meta["kind"] == "reward"
    assert meta["dit"]["digest"] == C.digest(dit_ck) and meta["vae"]["digest"] == C.load_meta(dit_ck)["vae"]["digest"]
    assert [s["digest"] for s in meta["stores"]] == [zarr.open_group(str(store), mode="r").attrs["digest"]]
    assert meta["stores"][0]["episodes"] == [0, 1] and meta["val_stores"][0]["episodes"] == [2]  # held out: the last
    m = meta["metrics"]
    assert m == printed["metrics"]
    # 17 rows per episode, 16 steps; held out: the first 4 rewards given (a context), the other 12 scored
    assert m["transitions"] == 12 and m["given"] == 4 and meta["train_counts"]["transitions"] == 32
    assert m["reward_mae"] >= 0 and m["reward_mae_zero_baseline"] > 0
    assert {"reward_nonzero_precision", "reward_nonzero_recall", "term_precision", "term_recall", "term_f1"} <= set(m)
    assert (out / "metrics.jsonl").is_file()
    assert find_reward(dit_run) == out
    assert find_reward(dit_ck) == out  # a checkpoint folder of the run finds it too


def test_find_reward_is_none_without_one_and_refuses_another_vae(reward_run, dit_run, tmp_path):
    bare = tmp_path / "dit"
    shutil.copytree(dit_run, bare, ignore=shutil.ignore_patterns("reward"))
    assert find_reward(bare) is None
    shutil.copytree(reward_run[0], bare / "reward")
    ck = C.resolve(bare / "reward")
    meta = json.loads((ck / "meta.json").read_text())
    meta["vae"]["digest"] = "0" * 64
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(C.CheckpointError, match="another VAE|latents of VAE"):
        find_reward(bare)


def test_loaded_model_reproduces_the_stored_held_out_metrics(reward_run, dit_run, store):
    model = load_reward(reward_run[0])
    assert model.meta["kind"] == "reward" and not model.training
    vae, meta, _ = load_world_vae(dit_run, CPU)
    val = StoreSet([str(store)], 2, "val", 1)

    def encode(frames):
        from worldsim.model.frames import to_model
        from worldsim.runtime import autocast

        with torch.no_grad(), autocast(CPU, "bf16"):
            return vae.encode(to_model(torch.from_numpy(frames))[:, None])[:, 0].float()

    data = collect(val, encode, meta["spec"]["action_scale"])
    assert evaluate(model, data, CPU) == model.meta["metrics"]


def test_save_and_load_round_trip_predictions_exactly(tmp_path):
    torch.manual_seed(0)
    model = RewardModel(RewardConfig(latent_channels=4, action_dim=3, width=8, depth=2, hidden=16))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
        model.reward_scale.fill_(2.5)
        model.zero_below.fill_(0.05)
    save_reward(tmp_path / "r", model, 7, {"note": "x"})
    loaded = load_reward(tmp_path / "r")
    assert loaded.meta["step"] == 7 and loaded.meta["note"] == "x" and loaded.cfg == model.cfg
    z0, z1, a = torch.randn(16, 4, 8, 8), torch.randn(16, 4, 8, 8), torch.randn(16, 3)
    r0, t0, s0 = model.predict(z0, z1, a)
    r1, t1, s1 = loaded.predict(z0, z1, a)
    assert torch.equal(r0, r1) and torch.equal(t0, t1) and torch.equal(s0, s1)
    assert r0.dtype == torch.float32 and t0.dtype == torch.bool and r0.shape == t0.shape == (16,)
    assert s0.shape == (16, model.cfg.state + 1) and torch.equal(s0[:, -1], r0)  # the state carries the reward
    assert torch.equal(loaded.predict(z0, z1, a, s0)[0], model.predict(z0, z1, a, s0)[0])
    assert not torch.equal(model.predict(z0, z1, a, s0)[0], r0)  # what came before changes the prediction
    assert bool(((r0 == 0) | (r0.abs() >= 0.05)).all())  # small rewards snap to exactly 0
    with pytest.raises(ValueError, match="action must be"):
        model.predict(z0, z1, a[:, :2])
    with pytest.raises(ValueError, match="state must be"):
        model.predict(z0, z1, a, s0[:, 1:])


def test_a_checkpoint_without_state_options_loads_as_a_stateless_linear_model(tmp_path):
    """Reward checkpoints from before the GRU state and symlog units still load and predict as they did."""
    model = RewardModel(RewardConfig(latent_channels=4, action_dim=3, width=8, depth=2, hidden=16, state=0,
                                     symlog=False))
    ck = save_reward(tmp_path / "old", model, 1, {})
    meta = json.loads((ck / "meta.json").read_text())
    del meta["model"]["state"], meta["model"]["symlog"]
    (ck / "meta.json").write_text(json.dumps(meta))
    loaded = load_reward(tmp_path / "old")
    assert loaded.cfg.state == 0 and loaded.cfg.symlog is False and loaded.cell is None


def test_same_seed_same_weights(dit_run, store, tmp_path, capsys):
    def weights(name: str, *extra: str) -> dict:
        assert cli(_reward_args(dit_run, store, f"out={tmp_path / name}", *extra)) == 0
        return load_file(str(C.resolve(tmp_path / name) / "model.safetensors"))

    a, b, c = weights("a"), weights("b"), weights("c", "seed=1")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def _synthetic(n: int, seed: int) -> Transitions:
    """reward 1 exactly when action column 0 is pressed; terminated when the next frame's channel 0 turns bright."""
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(2 * n, 4, 4, 4, generator=g)
    bright = torch.rand(n, generator=g) < 0.15
    latents[n:][bright, 0] += 3.0
    actions = (torch.rand(n, 3, generator=g) < 0.2).float()
    return Transitions(latents.half(), torch.arange(n), torch.arange(n, 2 * n), actions,
                       actions[:, 0].clone(), bright)


def test_learns_an_easy_reward_and_termination_rule():
    train, held = _synthetic(512, 0), _synthetic(256, 1)
    cfg = TrainRewardConfig(steps=200, batch_size=32, lr=3e-3, warmup=10, log_every=50)
    torch.manual_seed(0)
    model = RewardModel(RewardConfig(latent_channels=4, action_dim=3, width=16, depth=2, hidden=32))
    before = evaluate(model, held, CPU, given=0)
    fit(model, train, cfg, CPU)
    m = evaluate(model, held, CPU, given=0)
    assert before["reward_nonzero_recall"] == 0.0 and before["term_recall"] == 0.0  # untrained: predicts nothing
    assert m["reward_mae"] < 0.25 * m["reward_mae_zero_baseline"]
    assert m["reward_nonzero_precision"] > 0.9 and m["reward_nonzero_recall"] > 0.9
    assert m["term_f1"] > 0.8


def _hidden_sign(episodes: int, length: int, seed: int) -> Transitions:
    """Episodes whose every reward is +0.1 or -0.1 (a sign drawn per episode) over pure-noise latents and actions:
    nothing in a transition shows the sign; only the rewards seen before it do."""
    g = torch.Generator().manual_seed(seed)
    n = episodes * length
    sign = torch.where(torch.rand(episodes, generator=g) < 0.5, -1.0, 1.0).repeat_interleave(length)
    follows = (torch.arange(n) % length) != 0
    return Transitions(torch.randn(n + 1, 4, 4, 4, generator=g).half(), torch.arange(n), torch.arange(1, n + 1),
                       torch.randn(n, 3, generator=g), 0.1 * sign, torch.zeros(n, dtype=torch.bool), follows)


def _scores_by(name: str, values: tuple, train: Transitions, held: Transitions, cfg: TrainRewardConfig,
               given: int, **fixed) -> tuple[dict, RewardModel]:
    """Held-out scores of a small model trained on `train` once per value of its config field `name` (the others
    `fixed`), and the last model."""
    scores = {}
    for value in values:
        torch.manual_seed(0)
        model = RewardModel(RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, **fixed, **{name: value}))
        fit(model, train, cfg, CPU)
        scores[value] = evaluate(model, held, CPU, given=given)
    return scores, model


def test_the_state_carries_what_earlier_rewards_showed_through_a_dream():
    """Held-out episodes run closed-loop (2 recorded rewards given, then the model's own): a stateful model keeps
    the episode's sign for 18 more steps; a stateless one cannot beat always guessing one sign (MAE 0.1)."""
    train, held = _hidden_sign(64, 20, 0), _hidden_sign(16, 20, 1)
    assert bool(train.runs()[0][25] == 20) and bool(train.runs()[1][25] == 39)  # runs: one per episode
    assert still_reward(train) is None  # standing still does not decide the sign: no pauses
    cfg = TrainRewardConfig(steps=400, batch_size=16, seq_len=8, max_given=3, lr=1e-2, warmup=10, log_every=50)
    scores, _ = _scores_by("state", (0, 16), train, held, cfg, given=2, action_dim=3)
    assert scores[16]["transitions"] == 16 * 18 and scores[16]["reward_mae_zero_baseline"] == pytest.approx(0.1)
    assert scores[0]["reward_mae"] > 0.08
    assert scores[16]["reward_mae"] < 0.02


def test_the_task_state_at_the_first_frame_says_what_no_frame_and_no_reward_shows():
    """Episodes of _hidden_sign with no reward given (a dream from a store's frame): only the task state of the
    first frame (the sign, as a store's data/task_state would hold it) tells the sign. A model that starts its
    state from it predicts every step; one without it cannot beat guessing one sign (MAE 0.1)."""
    train, held = _hidden_sign(64, 20, 0), _hidden_sign(16, 20, 1)
    for data in (train, held):  # the task state of each transition's first frame: the episode's sign, plus noise
        data.task = torch.stack([10 * data.rewards, 0.3 * torch.randn(len(data))], dim=1)
    cfg = TrainRewardConfig(steps=300, batch_size=16, seq_len=8, max_given=0, lr=1e-2, warmup=10, log_every=50)
    scores, model = _scores_by("task_dim", (0, 2), train, held, cfg, given=0, action_dim=3, state=16)
    assert scores[2]["transitions"] == 16 * 20
    assert scores[0]["reward_mae"] > 0.08
    assert scores[2]["reward_mae"] < 0.02
    # standardised by the training data: the buffers hold its mean and spread
    assert model.task_std[0] == pytest.approx(float(train.task[:, 0].std()), rel=1e-4)
    with pytest.raises(InputError, match="task state must be"):
        model.initial(2, torch.zeros(2, 3))
    assert torch.equal(model.initial(2), torch.zeros(2, 17))  # no task state given: zeros, as without a task input


def _walk(episodes: int, length: int, seed: int) -> Transitions:
    """A goal on a line: each step's action column 0 (-1, 0 or +1) moves the player, the goal's offset g moves the
    other way, and the reward is 0.1 per unit closer; the task state is (g, noise) at each frame. Latents are pure
    noise: only the start's state and the actions since say where the goal is."""
    g = torch.Generator().manual_seed(seed)
    n = episodes * length
    actions = torch.randn(n, 3, generator=g)
    actions[:, 0] = torch.randint(-1, 2, (n,), generator=g).float()
    moves = actions[:, 0].view(episodes, length)
    start = torch.randint(-6, 7, (episodes, 1), generator=g).float()
    offset = torch.cat([start, start - moves.cumsum(1)], dim=1)  # (E, L + 1): before and after each step
    noise = 0.3 * torch.randn(episodes, length + 1, generator=g)
    state = torch.stack([offset, noise], dim=2)
    follows = (torch.arange(n) % length) != 0
    return Transitions(torch.randn(n + 1, 4, 4, 4, generator=g).half(), torch.arange(n), torch.arange(1, n + 1),
                       actions, (0.1 * (offset[:, :-1].abs() - offset[:, 1:].abs())).flatten(),
                       torch.zeros(n, dtype=torch.bool), follows, state[:, :-1].flatten(0, 1),
                       state[:, 1:].flatten(0, 1))


def test_tracking_keeps_where_the_goal_is_and_the_reward_follows():
    """model.track (a head reads the goal back off the GRU state) and model.odometry (each step's turn and move,
    read off the transition, move the goal point): both start from the first frame's task state and are trained on
    the recorded one after each step. Both follow the goal through the actions far better than keeping the start's
    state (which is all the model was given), odometry best, and the reward, which depends on where the goal is, is
    then learnt; without either the same model does worse than predicting 0."""
    train, held = _walk(96, 16, 0), _walk(16, 16, 1)
    cfg = TrainRewardConfig(steps=300, batch_size=16, seq_len=16, max_given=0, lr=1e-2, warmup=10, log_every=50,
                            task_state=True)
    scores, models = {}, {}
    for name in ("none", "track", "odometry"):
        torch.manual_seed(0)
        flags = {name: True} if name != "none" else {}
        models[name] = RewardModel(RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, action_dim=3,
                                                state=16, task_dim=2, **flags))
        fit(models[name], train, cfg, CPU)
        scores[name] = evaluate(models[name], held, CPU, given=0)
    assert "task_mae" not in scores["none"] and models["none"].tracks is False
    assert scores["none"]["reward_mae"] > 0.9 * scores["none"]["reward_mae_zero_baseline"]
    for name, most in (("track", 0.4), ("odometry", 0.15)):
        m = scores[name]
        assert m["task_mae_start"][0] > 1.0  # the goal does move away from where it started
        assert m["task_mae"][0] < most * m["task_mae_start"][0]
        assert m["reward_mae"] < 0.25 * m["reward_mae_zero_baseline"]
    assert scores["odometry"]["reward_mae"] < scores["track"]["reward_mae"]
    # the state: GRU vector, (odometry) the point, the last reward; the point is what `tracked` reads
    odo = models["odometry"]
    assert odo.width == 16 + 2 + 1 and models["track"].width == 16 + 1
    start = torch.tensor([[3.0, -1.0]])
    assert torch.equal(odo.tracked(odo.initial(1, start)[:, :-1]), start)
    # the geometry: a step of 1 forward, then a quarter turn to the right: a goal 3 ahead, 1 left is 1 behind, 2 left
    moved = RewardModel.move(start, torch.tensor([[np.pi / 2, 1.0, 0.0]]))
    assert torch.allclose(moved, torch.tensor([[-1.0, -2.0]]), atol=1e-6)
    h = torch.zeros(5, 16)
    assert models["track"].tracked(h).shape == (5, 2)
    with pytest.raises(InputError, match="no tracking head"):
        models["none"].tracked(h)
    for bad in ({"track": True}, {"odometry": True}, {"odometry": True, "track": True, "task_dim": 2},
                {"odometry": True, "task_dim": 3}):
        with pytest.raises(InputError, match="bad reward model config"):
            RewardModel(RewardConfig(latent_channels=4, action_dim=3, state=16, **bad))


def _turning_walk(episodes: int, length: int, seed: int, scale: float) -> Transitions:
    """A goal in the plane: each step turns the camera by action column 1 (up to 40 degrees either way, stored
    divided by `scale` as a world model's action_scale would) and walks 0.3 blocks forward where column 0 says so;
    the task state is the goal's (forward, right) offset at each frame, the reward 0.1 per block closer. Latents are
    pure noise: only the start's state and the actions since say where the goal is."""
    g = torch.Generator().manual_seed(seed)
    n = episodes * length
    actions = torch.randn(n, 3, generator=g)
    actions[:, 0] = torch.randint(0, 2, (n,), generator=g).float()
    actions[:, 1] = (torch.rand(n, generator=g) * 80 - 40) / scale
    steps = torch.stack([torch.deg2rad(actions[:, 1] * scale), 0.3 * actions[:, 0], torch.zeros(n)], 1)
    points = [torch.rand(episodes, 2, generator=g) * 12 - 6]
    for t in range(length):
        points.append(RewardModel.move(points[-1], steps.view(episodes, length, 3)[:, t]))
    state = torch.stack(points, 1)  # (E, L + 1, 2)
    dist = state.norm(dim=2)
    follows = (torch.arange(n) % length) != 0
    return Transitions(torch.randn(n + 1, 4, 4, 4, generator=g).half(), torch.arange(n), torch.arange(1, n + 1),
                       actions, (0.1 * (dist[:, :-1] - dist[:, 1:])).flatten(), torch.zeros(n, dtype=torch.bool),
                       follows, state[:, :-1].flatten(0, 1), state[:, 1:].flatten(0, 1))


def test_odometry_takes_the_turn_from_the_camera_action():
    """model.turn_column: the turn of each step is the action's camera column (degrees, times turn_scale: the
    world model's action scale), exactly; only the move is learned. On a walk that turns up to 40 degrees a step,
    the exact turn tracks the goal at least twice as close as a learned one after the same training, and a pause
    (the frame held under the step's own action, `insert_pauses`) is taught as a turn without a move."""
    train, held = _turning_walk(96, 16, 0, 10.0), _turning_walk(16, 16, 1, 10.0)
    cfg = TrainRewardConfig(steps=200, batch_size=16, seq_len=16, max_given=0, lr=1e-2, warmup=10, log_every=50,
                            task_state=True, still_fraction=0.0)
    scores, models = {}, {}
    for col in (-1, 1):
        torch.manual_seed(0)
        models[col] = RewardModel(RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, action_dim=3, state=16,
                                               task_dim=2, odometry=True, turn_column=col, turn_scale=10.0))
        fit(models[col], train, cfg, CPU)
        scores[col] = evaluate(models[col], held, CPU, given=0)["task_mae"]
    assert max(scores[1]) < 0.5 * min(scores[-1]), scores
    exact = models[1]
    a = torch.tensor([[0.0, 9.0, 0.0]])  # 90 degrees to the right, no step
    assert torch.allclose(exact.turn(a), torch.tensor([np.pi / 2]))
    assert models[-1].turn(a) is None
    # a pause's tracking target: turned by its own action, unmoved; under the zero action where it was
    idx, pause = torch.tensor([[0, 1]]), torch.tensor([[PAUSE_OWN, PAUSE_ZERO]])
    want = RewardModel.move(train.task[:1], torch.stack([exact.turn(train.actions[:1]), torch.zeros(1),
                                                         torch.zeros(1)], 1))
    got = paused_task(exact, train, idx, pause)
    assert torch.allclose(got[0, 0], want[0]) and torch.equal(got[0, 1], train.task[1])
    assert torch.equal(paused_task(models[-1], train, idx, pause)[0], train.task[:2])  # a learned turn: as before
    # a model that takes its turn from the action cannot run without the actions
    feats = torch.zeros(1, 2, exact.cell.input_size - 1)
    with pytest.raises(InputError, match="run needs the actions"):
        exact.run(feats, None, 0, train.task[:1])
    actions = train.actions[:2][None]
    assert torch.equal(models[-1].run(feats, None, 0, train.task[:1], actions=actions)[2],
                       models[-1].run(feats, None, 0, train.task[:1])[2])  # a learned turn ignores them
    for bad in ({"turn_column": 3}, {"turn_column": 1, "odometry": False}, {"turn_column": 1, "turn_scale": 0.0}):
        with pytest.raises(InputError, match="bad reward model config"):
            RewardModel(RewardConfig(latent_channels=4, action_dim=3, state=16, task_dim=2,
                                     **{"odometry": True, **bad}))
    # the config from the stores: camera_yaw when exact_turn, else learned
    base = RewardConfig(action_dim=3, state=16, task_dim=2, odometry=True)
    keys, scale = ["forward", "camera_yaw", "jump"], [1.0, 10.0, 1.0]
    chosen = turn_column(base, True, keys, scale)
    assert (chosen.turn_column, chosen.turn_scale) == (1, 10.0)
    assert turn_column(base, False, keys, scale).turn_column == -1
    assert turn_column(base, True, ["forward", "jump", "x"], scale).turn_column == -1
    assert turn_column(replace(base, odometry=False), True, keys, scale).turn_column == -1


def _move_error(model: RewardModel, data: Transitions) -> float:
    """Mean |odometry move - recorded move| (blocks) over every step of `data`, each from the recorded point."""
    with torch.no_grad():
        feats = model.features(*data.take(torch.arange(len(data)))[:2], data.actions)
        step = model.odo_step(feats, model.turn(data.actions))
    _, truth = true_moves(model, data, torch.arange(len(data)), None)
    return float((step[:, 1:] - truth).abs().mean())


def test_move_loss_teaches_each_steps_move():
    """move_weight: with the turn from the action, the recorded task states give each step's true move
    (`RewardModel.step_of` undoes `move` exactly; a pause moves nothing), and a loss on it teaches the odometry the
    move at least twice as well as the point's loss alone after the same training (a synthetic walk: 0.3 blocks
    where the action says walk, else none)."""
    train, held = _turning_walk(96, 16, 0, 10.0), _turning_walk(16, 16, 1, 10.0)
    point = torch.randn(5, 2) * 4
    step = torch.stack([torch.rand(5) * 6 - 3, torch.randn(5), torch.randn(5)], 1)
    assert torch.allclose(RewardModel.step_of(point, RewardModel.move(point, step), step[:, 0]), step[:, 1:],
                          atol=1e-5)
    model = RewardModel(RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, action_dim=3, state=16,
                                     task_dim=2, odometry=True, turn_column=1, turn_scale=10.0))
    turn, truth = true_moves(model, train, torch.arange(len(train)), None)
    assert torch.allclose(truth[:, 0], 0.3 * train.actions[:, 0], atol=1e-4)
    assert torch.allclose(truth[:, 1], torch.zeros(len(train)), atol=1e-4)
    assert abs(mean_step(model, train) - 0.3 * float(train.actions[:, 0].mean())) < 1e-3
    idx, pause = torch.tensor([[0, 1, 2]]), torch.tensor([[NO_PAUSE, PAUSE_OWN, PAUSE_ZERO]])
    turn, truth = true_moves(model, train, idx, pause)
    assert torch.equal(truth[0, 1:], torch.zeros(2, 2)) and float(turn[0, 2]) == 0.0
    assert torch.allclose(turn[0, :2], model.turn(train.actions[:2]))
    errors = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = RewardModel(RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, action_dim=3, state=16,
                                         task_dim=2, odometry=True, turn_column=1, turn_scale=10.0))
        fit(model, train, TrainRewardConfig(steps=200, batch_size=16, seq_len=16, max_given=0, lr=1e-2, warmup=10,
                                            log_every=50, task_state=True, still_fraction=0.0, move_weight=weight),
            CPU)
        errors[weight] = _move_error(model, held)
    assert errors[1.0] < 0.5 * errors[0.0], errors
    with pytest.raises(InputError, match="move_weight must be >= 0"):
        fit(model, train, TrainRewardConfig(steps=1, task_state=True, move_weight=-1.0), CPU)


def test_train_reward_with_the_task_state_and_dream_env_starts_from_it(dit_run, store, tmp_path, capsys):
    """task_state=true on navigate stores (data/task_state: the goal's forward / right offset): the checkpoint
    records the keys, and DreamEnv's reset warms the reward state from the task state of the first context frame
    of the episode it drew (the same state as warming the model by hand with that row); with odometry the tracked
    point then starts from the last context frame's recorded state, and the turn comes from the camera_yaw column."""
    from store import read_episode
    from worldsim.dream.env import DreamEnv

    out = tmp_path / "reward_task"
    assert cli(_reward_args(dit_run, store, f"out={out}", "task_state=true", "seq_len=4", "model.odometry=true")) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = load_reward(out)
    assert model.cfg.task_dim == 2 and model.meta["task_state_keys"] == ["goal_forward", "goal_right"]
    keys = model.meta["action_spec"]["flat_keys"]
    assert model.cfg.turn_column == keys.index("camera_yaw") and model.cfg.turn_scale == \
        model.meta["action_scale"][keys.index("camera_yaw")]
    assert printed["metrics"]["transitions"] > 0
    env = DreamEnv.from_checkpoint(dit_run, reward=str(out), store=str(store), max_episode_steps=4)
    calls, warm = [], env.reward_model.warm
    env.reward_model.warm = lambda *args: calls.append(args) or warm(*args)
    _, info = env.reset(seed=3)
    ep = read_episode(str(store), info["episode"])
    z, acts, rewards, task, last = calls[-1]
    first = info["start"] + len(ep["frames"][info["start"] :][: env.source.context]) - z.shape[1]
    assert torch.equal(task, torch.from_numpy(ep["task_state"][first])[None])  # the first warmed frame's row
    assert torch.equal(last, torch.from_numpy(ep["task_state"][first + z.shape[1] - 1])[None])  # the last one's
    assert torch.equal(env.reward_state[0], warm(z, acts, rewards, task, last)[0])
    assert not torch.equal(env.reward_state[0], warm(z, acts, rewards, None)[0])  # it changes the state
    # the estimate of where the goal is, in the engine's units and keys: after the reset the last frame's own
    assert info["task_state_keys"] == ["goal_forward", "goal_right"] and info["task_state"].shape == (2,)
    assert np.array_equal(info["task_state"], ep["task_state"][first + z.shape[1] - 1].astype(np.float32))
    assert np.array_equal(info["task_state"], model.tracked(env.reward_state[:, :-1])[0].detach().numpy())
    _, _, _, _, info = env.step(env.action_space.sample())  # steps on from the warmed state
    assert np.array_equal(info["task_state"], env.task_estimate()[0]) and env.tracking[0]
    assert len(printed["metrics"]["task_mae"]) == 2 and len(printed["metrics"]["task_mae_start"]) == 2
    # a reset from frames gives no task state, which odometry starts from: refused, in one line
    with pytest.raises(InputError, match="reset from a store that records data/task_state"):
        env.reset(seed=0, options={"frames": ep["frames"][:3]})


def test_train_reward_on_dreams_along_recorded_actions(dit_run, store, tmp_path, capsys):
    """dreams=N: the world model dreams along N recorded action streams (worldsim/dream/replay.py) and the reward
    model trains on those latents beside the store's, paid what the engine paid. A dream starts from the store's
    encoded context, dreams the rest (not the engine's frames), keeps the episode's actions, rewards and task state;
    same seed, same bytes; the runs join the training transitions without chaining into each other."""
    from store import read_episode
    from worldsim.dream.core import default_context
    from worldsim.dream.replay import _episodes, dream_runs
    from worldsim.model.sampler import WorldSampler
    from worldsim.train.train_reward import dreamed

    runs = dream_runs(str(dit_run), [str(store)], 3, 2, seed=5, rows=2)
    again = dream_runs(str(dit_run), [str(store)], 3, 2, seed=5, rows=3)  # other batching, same dreams
    other = dream_runs(str(dit_run), [str(store)], 3, 2, seed=6, rows=2)
    assert all(np.array_equal(a["latents"], b["latents"]) for a, b in zip(runs, again))
    assert not all(np.array_equal(a["latents"], b["latents"]) for a, b in zip(runs, other))
    sampler = WorldSampler.load(str(dit_run))
    context = default_context(sampler)
    for dream in runs:
        ep = read_episode(dream["store"], dream["episode"])
        f, s = len(dream["latents"]), dream["start"]
        assert f - context == min(2, len(ep["frames"]) - s - context) >= 1  # up to the horizon, in the episode
        assert dream["actions"].shape == (f - 1, ep["actions"].shape[1])
        assert np.array_equal(dream["actions"], ep["actions"][s : s + f - 1])
        assert np.array_equal(dream["rewards"], ep["rewards"][s : s + f - 1])
        assert np.array_equal(dream["task_state"], ep["task_state"][s : s + f])
        real = sampler.encode(ep["frames"][s : s + f]).float()[0]
        assert torch.allclose(torch.from_numpy(dream["latents"][:context]).float(), real[:context], atol=0.05)
        assert (torch.from_numpy(dream["latents"][context:]).float() - real[context:]).abs().mean() > 0.01
    # episodes of a skipped policy are never dreamed along (train-reward's skip_policies)
    policies = {policy for _, policy in _episodes(str(store)).values()}
    with pytest.raises(InputError, match="nothing to dream along"):
        dream_runs(str(dit_run), [str(store)], 3, 2, skip_policies=sorted(policies))
    keys = list(runs[0]["task_state_keys"])
    data = dreamed(runs, [1.0] * runs[0]["actions"].shape[1], keys)
    assert len(data) == sum(len(r["latents"]) - 1 for r in runs)
    assert data.chained().sum() == len(data) - len(runs)  # each dream a run of its own
    joined = data.cat(data)
    assert len(joined) == 2 * len(data) and joined.chained().sum() == 2 * (len(data) - len(runs))
    assert torch.equal(joined.latents[joined.next[len(data)]], data.latents[data.next[0]])
    out = tmp_path / "reward_dreams"
    assert cli(_reward_args(dit_run, store, f"out={out}", "task_state=true", "seq_len=4", "model.odometry=true",
                            "dreams=3", "dream_horizon=2")) == 0
    assert C.load_meta(C.resolve(out))["train"]["dreams"] == 3
    capsys.readouterr()
    assert cli(_reward_args(dit_run, store, f"out={tmp_path / 'bad'}", "dreams=-1")) != 0
    assert "dreams must be >= 0" in capsys.readouterr().err
    # a missing dreamer or dream store is refused before any encoding, in one line, writing nothing
    for bad, said in ((f"dream_ckpt={tmp_path / 'none'}", "no checkpoint at"),
                      (f"dream_store=[{tmp_path / 'nostore'}]", "nostore")):
        assert cli(_reward_args(dit_run, store, f"out={tmp_path / 'bad2'}", "dreams=2", bad)) != 0
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "bad2").exists()


def test_stores_without_the_task_state_refuse_task_state_true(dit_run, tmp_path, capsys):
    old = _store(tmp_path / "explore", task="explore", episodes=2, steps=6)
    assert "task_state_keys" not in zarr.open_group(str(old), mode="r").attrs  # explore has no task state
    code = cli(_reward_args(dit_run, old, f"out={tmp_path / 'r'}", "task_state=true"))
    assert code != 0
    assert "task_state=true needs store stores that all record the same task state" in capsys.readouterr().err


def _left_or_right(n: int, seed: int) -> Transitions:
    """One bright 2x2 blob in each next frame, at columns 5-6 or 6-7 (reward +0.1) or 8-9 or 9-10 (-0.1) of a
    16-wide grid: far enough from the borders that the convs' zero padding cannot tell where it is; pooled over the
    grid, left and right look the same."""
    g = torch.Generator().manual_seed(seed)
    latents = 0.1 * torch.randn(2 * n, 4, 16, 16, generator=g)
    col = torch.tensor([5, 6, 8, 9])[torch.randint(0, 4, (n,), generator=g)]
    for i in range(n):
        latents[n + i, 0, 7:9, col[i]:col[i] + 2] += 3.0
    rewards = torch.where(col < 8, 0.1, -0.1)
    return Transitions(latents.half(), torch.arange(n), torch.arange(n, 2 * n), torch.zeros(n, 1), rewards,
                       torch.zeros(n, dtype=torch.bool))


def test_the_grid_embedding_sees_where_things_are():
    """Mean and max pooling lose where a thing is; `grid` keeps it (a goal on the left or the right)."""
    train, held = _left_or_right(512, 0), _left_or_right(256, 1)
    cfg = TrainRewardConfig(steps=300, batch_size=32, lr=3e-3, warmup=10, log_every=50)
    scores = {k: v["reward_mae"] for k, v in _scores_by("grid", (0, 2), train, held, cfg, given=0, action_dim=1,
                                                          state=0)[0].items()}
    assert scores[2] < 0.02 < 0.08 < scores[0], scores  # pooled: no better than guessing one sign (MAE 0.1)


def _biased(recorded: torch.Tensor, predicted: float) -> tuple[RewardModel, Transitions]:
    """A stateless model that predicts `predicted` for every transition, and transitions with `recorded` rewards."""
    n = len(recorded)
    model = RewardModel(RewardConfig(latent_channels=4, action_dim=1, width=8, depth=2, hidden=16, state=0))
    nonzero = recorded[recorded != 0].abs()
    model.reward_scale.fill_(float(nonzero.median()))
    model.zero_below.fill_(0.5 * float(nonzero.min()))
    with torch.no_grad():
        model.head[-1].bias[0] = model.unit(torch.tensor(predicted))
    data = Transitions(torch.randn(2 * n, 4, 8, 8).half(), torch.arange(n), torch.arange(n, 2 * n), torch.zeros(n, 1),
                       recorded, torch.zeros(n, dtype=torch.bool))
    return model.eval(), data


def test_the_snap_threshold_is_calibrated_on_the_training_rewards():
    """A dense reward (non-zero down to float noise) leaves the old floor at ~0: a small bias is then paid on every
    step. Calibrated, predictions below the MAE-minimising threshold are exactly 0; where they are right, not."""
    torch.manual_seed(0)
    cfg = TrainRewardConfig(seq_len=1)
    mostly_zero = torch.where(torch.rand(2000) < 0.8, 0.0, 0.1)
    mostly_zero[:5] = 1e-9  # float noise: the floor is 5e-10
    model, data = _biased(mostly_zero, 0.01)
    assert float(model.predict(*data.take(torch.arange(4))[:3])[0][0]) == pytest.approx(0.01, rel=1e-4)
    t = calibrate_snap(model, data, cfg, CPU, typical=0.1)
    assert 0.01 < t <= 0.05 and float(model.zero_below) == t
    assert bool((model.predict(*data.take(torch.arange(64))[:3])[0] == 0).all())  # standing still earns 0
    small = torch.full((2000,), 0.01)
    small[:5] = 1e-9
    model, data = _biased(small, 0.01)
    assert calibrate_snap(model, data, cfg, CPU, typical=0.01) == pytest.approx(5e-10)  # right: kept


def test_pauses_repeat_a_frame_and_shift_the_rest_of_the_sequence():
    rng = np.random.default_rng(0)
    idx = np.arange(40).reshape(4, 10) * 100 + np.arange(10)
    valid = np.ones((4, 10), bool)
    valid[3, 8:] = False
    same = insert_pauses(rng, idx, valid, 0.0)
    assert (same[0] == idx).all() and (same[1] == valid).all() and (same[2] == NO_PAUSE).all()
    out, ok, pause = insert_pauses(np.random.default_rng(1), idx, valid, 1.0)
    kinds = set()
    for b in range(4):
        at = np.flatnonzero(pause[b])
        assert 1 <= len(at) <= 5 and (np.diff(at) == 1).all()  # one run of 1..L/2 steps
        s, k = at[0], len(at)
        assert (out[b, s : s + k] == idx[b, s]).all()  # the frame before the pause, repeated
        assert (out[b, :s] == idx[b, :s]).all() and (out[b, s + k :] == idx[b, s : 10 - k]).all()  # shifted on
        assert (ok[b, s + k :] == valid[b, s : 10 - k]).all()
        kinds |= set(pause[b, at].tolist())
    assert kinds == {PAUSE_OWN, PAUSE_ZERO}


def _blob_approach(n: int, seed: int) -> Transitions:
    """Half the transitions show a blob that grows brighter (the goal getting closer: +0.1), half an empty frame
    that barely changes (0). In this data the blob is never seen standing still: "blob in view" and "blob grew"
    are the same thing, as the goal in view and getting closer nearly are in navigate's recorded episodes."""
    g = torch.Generator().manual_seed(seed)
    prev = 0.1 * torch.randn(n, 4, 8, 8, generator=g)
    blob = torch.rand(n, generator=g) < 0.5
    level = 1.0 + 2.0 * torch.rand(n, generator=g)
    prev[blob, 0, 3:5, 3:5] += level[blob, None, None]
    nxt = prev + 0.01 * torch.randn(n, 4, 8, 8, generator=g)
    nxt[blob, 0, 3:5, 3:5] += 1.0
    rewards = torch.where(blob, 0.1, 0.0)
    return Transitions(torch.cat([prev, nxt]).half(), torch.arange(n), torch.arange(n, 2 * n),
                       (torch.rand(n, 1, generator=g) < 0.5).float(), rewards, torch.zeros(n, dtype=torch.bool))


def test_pauses_teach_that_an_unchanged_frame_pays_what_standing_still_pays():
    """Fed a blob frame as its own next frame (a dream that stopped in front of the goal), the model trained on the
    recorded transitions alone still pays for the blob; trained with pauses it pays what the data's stillest
    transitions paid (0)."""
    train, held = _blob_approach(512, 0), _blob_approach(256, 1)
    assert still_reward(train) == 0.0
    z = held.take(torch.arange(len(held)))[0][held.rewards > 0]  # blob frames
    paid = {}
    for fraction in (0.0, 0.5):
        cfg = TrainRewardConfig(steps=300, batch_size=32, lr=3e-3, warmup=10, log_every=50, still_fraction=fraction,
                                seq_len=1)
        torch.manual_seed(0)
        model = RewardModel(RewardConfig(latent_channels=4, action_dim=1, width=8, depth=2, hidden=16, state=0))
        fit(model, train, cfg, CPU)
        assert evaluate(model, held, CPU, given=0)["reward_mae"] < 0.01  # both learn the recorded rule
        paid[fraction] = float(model.predict(z, z, torch.zeros(len(z), 1))[0].mean())
    assert paid[0.0] > 0.03 and paid[0.5] < 0.005, paid


def test_without_actions_the_reward_is_read_off_the_latents_alone():
    torch.manual_seed(0)
    z0, z1 = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    for actions in (True, False):
        model = RewardModel(RewardConfig(latent_channels=4, action_dim=3, width=8, depth=2, hidden=16,
                                         actions=actions)).eval()
        torch.nn.init.normal_(model.head[-1].weight)  # an untrained head outputs 0 whatever it reads
        a, b = (model(z0, z1, torch.randn(4, 3))[0] for _ in range(2))
        assert torch.equal(a, b) is not actions


def test_rare_transitions_are_oversampled():
    rewards = torch.zeros(1000)
    rewards[:10] = 1.0
    term = torch.zeros(1000, dtype=torch.bool)
    term[995:] = True
    p = draw_probabilities(rewards, term, 0.3, 0.2)
    assert p.sum() == pytest.approx(1.0)
    assert p[:10].sum() == pytest.approx(0.3) and p[995:].sum() == pytest.approx(0.2)
    assert p[10:995].sum() == pytest.approx(0.5) and p[500] == pytest.approx(0.5 / 985)
    dense = draw_probabilities(torch.ones(10), torch.zeros(10, dtype=torch.bool), 0.3, 0.2)
    assert dense == pytest.approx([0.1] * 10)  # only one kind: uniform


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the 1-frame store's action statistics are empty (NaN)
def test_bad_inputs_are_one_line_errors(dit_run, store, root, capsys, tmp_path):
    err = one_line_error(capsys, cli, _reward_args(root / "vae", store, f"out={tmp_path / 'x'}"))
    assert "'vae' checkpoint" in err and "world-model" in err
    err = one_line_error(capsys, cli, _reward_args(tmp_path / "nothing", store))
    assert "no checkpoint at" in err
    wide = _store(tmp_path / "wide", episodes=2, steps=3, width=48)
    err = one_line_error(capsys, cli, _reward_args(dit_run, wide, f"out={tmp_path / 'w'}"))
    assert "32x48" in err and "32x32" in err
    other = tmp_path / "other_game"
    shutil.copytree(store, other)
    g = zarr.open_group(str(other), mode="r+")
    g.attrs["action_spec"] = {**g.attrs["action_spec"], "flat_keys": ["jump"]}
    err = one_line_error(capsys, cli, _reward_args(dit_run, other, f"out={tmp_path / 'o'}"))
    assert "action spec" in err
    empty = _store(tmp_path / "empty", task="explore", episodes=2, steps=0)
    err = one_line_error(capsys, cli, _reward_args(dit_run, empty, f"out={tmp_path / 'e'}"))
    assert "no window of 2 frames" in err
    err = one_line_error(capsys, cli, _reward_args(dit_run, store, "reward_fraction=0.9", "term_fraction=0.2"))
    assert "below 1" in err
    err = one_line_error(capsys, cli, _reward_args(dit_run, store, "reward_loss=mse", f"out={tmp_path / 'l'}"))
    assert "reward_loss must be one of huber, l1" in err
    err = one_line_error(capsys, cli, _reward_args(dit_run, store, "still_fraction=1.5", f"out={tmp_path / 's'}"))
    assert "still_fraction must be in [0, 1], got 1.5" in err
    err = one_line_error(capsys, cli, _reward_args(dit_run, store, "model.grid=-1", f"out={tmp_path / 'g'}"))
    assert "bad reward model config" in err
    err = one_line_error(capsys, cli, _reward_args(dit_run, store, "skip_policies=[Nobody]", f"out={tmp_path / 'p'}"))
    assert "skip_policies ['Nobody']" in err and "they hold [" in err
    for name in ("w", "o", "l", "g", "p"):
        assert not (tmp_path / name).exists()  # nothing written on refusal


def test_skip_policies_leaves_out_exactly_the_episodes_those_policies_recorded(dit_run, store, tmp_path):
    """collect(skip_policies=...) drops every transition of the episodes a named policy recorded and no other."""
    from store import open_store, read_episode, read_texts

    root = open_store(str(store))
    bucket = next(b for b in root.group_keys() if b.startswith("b_"))
    names = read_texts(root[bucket], "episode_policy")
    lengths = [len(read_episode(str(store), i)["frames"]) - 1 for i in range(len(names))]  # transitions per episode
    stores = StoreSet([str(store)], 2, "all")
    zeros = lambda px: torch.zeros(len(px), 2, 4, 4)  # noqa: E731  (the frames do not matter here)
    everything = collect(stores, zeros, [1.0] * stores.action_dim)
    assert len(everything) == sum(lengths)
    skip = names[0]
    kept = collect(stores, zeros, [1.0] * stores.action_dim, skip_policies=[skip])
    assert len(kept) == sum(n for n, p in zip(lengths, names) if p != skip) < len(everything)
    assert bool(kept.follows[0]) is False  # the kept episodes still chain only within themselves
    assert int(kept.follows.sum()) == sum(n - 1 for n, p in zip(lengths, names) if p != skip)
    # through the CLI: the run records what it left out (and a single name needs no brackets)
    out = tmp_path / "skipped"
    assert cli(_reward_args(dit_run, store, f"skip_policies={skip}", "steps=2", f"out={out}")) == 0
    info = json.loads((C.resolve(out) / "meta.json").read_text())
    assert info["train"]["skip_policies"] == [skip]
    assert info["train_counts"]["transitions"] == len(kept)


def test_check_stores_names_the_store(dit_run, store):
    _, meta, ck = load_world_vae(dit_run, CPU)
    stores = StoreSet([str(store)], 2, "all")
    check_stores(stores, meta, ck)  # the training store passes
    with pytest.raises(ValueError, match=str(store)):
        check_stores(stores, {**meta, "height": 64, "width": 64}, ck)


def test_load_reward_refuses_foreign_and_corrupt_checkpoints(reward_run, dit_run, tmp_path):
    with pytest.raises(C.CheckpointError, match="'dit' checkpoint, not a reward model"):
        load_reward(dit_run)
    with pytest.raises(C.CheckpointError, match="no checkpoint at"):
        load_reward(tmp_path / "missing")
    bad = tmp_path / "bad"
    shutil.copytree(reward_run[0], bad)
    f = C.resolve(bad) / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(C.CheckpointError, match="corrupt or truncated") as info:
        load_reward(bad)
    assert "\n" not in str(info.value)


def test_dream_reward_benchmark_replays_the_engine_beside_the_dream(reward_run, dit_run, tiny_pipeline, tmp_path,
                                                                   capsys):
    """benchmarks/dream_reward.py on the tiny run: the engine rebuilt from the store's job and seeds reproduces the
    stored frames (no episode diverges) and, under the recorded actions, the stored rewards; every row has numbers;
    --frames writes the picture."""
    import importlib.util

    import numpy as np

    from store import read_episode

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "dream_reward.py"
    spec = importlib.util.spec_from_file_location("dream_reward", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    held = str(tiny_pipeline["heldout"])
    png = tmp_path / "frames.png"
    res = mod.main(["--checkpoint", str(dit_run), "--store", held, "--episodes", "2", "--horizon", "4", "2",
                    "--threads", "1", "--frames", str(png)])
    assert res["diverged"] == 0 and png.is_file()
    engine = mod.engine_for(held)
    for i in range(2):
        ep = read_episode(held, i)
        seen = res["context"]  # the dream starts after the world model's context frames
        stream = ep["actions"][seen - 1 : seen - 1 + 4]
        rewards, played, frames = mod.engine_play(engine, ep, seen, stream)
        ret = float(np.sum(rewards))
        assert ret == pytest.approx(float(np.sum(ep["rewards"][seen - 1 : seen - 1 + 4])), abs=1e-6)
        assert np.array_equal(frames, ep["frames"][seen - 1 : seen + 4])  # the engine's replay is the stored episode
        assert res["engine"]["recorded"][i] == pytest.approx(ret, abs=1e-6)
        assert res["by_horizon"][2]["engine"]["recorded"][i] == pytest.approx(
            float(np.sum(ep["rewards"][seen - 1 : seen + 1])), abs=1e-6)
    for kind in ("recorded", "solver", "random", "no-op", "forward", "still, no-op", "still, forward"):
        assert len(res["dream"][kind]) == 2 and np.isfinite(res["dream"][kind]).all(), kind
    for kind in ("recorded", "solver", "random", "no-op", "forward"):
        assert np.isfinite(res["engine_frames"][kind]).all() and np.isfinite(res["engine"][kind]).all(), kind
    # a cut is the same dreams' first steps: dreaming 2 steps alone pays what the 4-step dreams paid by step 2
    alone = mod.main(["--checkpoint", str(dit_run), "--store", held, "--episodes", "2", "--horizon", "2",
                      "--threads", "1", "--no-engine"])
    for kind in ("recorded", "no-op", "forward", "still, forward"):
        assert alone["dream"][kind] == pytest.approx(res["by_horizon"][2]["dream"][kind], abs=1e-6), kind
    out = capsys.readouterr().out
    assert "returns over the first 2 steps" in out and "returns over the first 4 steps" in out
    assert "| solver | " in out and "solver minus forward:" in out


def test_state_reward_reads_the_reward_off_the_tracked_point():
    """model.state_reward: with odometry, the reward is a function of the tracked point's geometry alone (the same
    point and step pay the same whatever the frames show; termination still reads them), and on a walk whose reward
    is the point's (0.1 a block closer, frames pure noise) it is learned closer than by the head that reads the
    frames too, after the same training; without odometry it is refused."""
    torch.manual_seed(0)
    cfg = RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, action_dim=3, state=16, task_dim=2,
                       odometry=True, turn_column=1, turn_scale=10.0, state_reward=True)
    model = RewardModel(cfg)
    with torch.no_grad():
        for layer in (model.state_head[-1], model.head[-1]):  # zero at init: make both say something
            layer.weight.normal_()
            layer.bias.normal_()
    state = model.with_point(model.initial(2), torch.tensor([[3.0, 1.0], [3.0, 1.0]]))
    a, b = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    action = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    unit, logit, _ = model(a, b, action, state)  # the odometry's move is zero at init: the same step for both
    assert torch.allclose(unit[0], unit[1]) and not torch.allclose(logit[0], logit[1])
    other = model.with_point(state, torch.tensor([[3.0, 1.0], [-2.0, 5.0]]))
    assert not torch.allclose(*model(a, b, action, other)[0].unbind())
    with pytest.raises(InputError, match="bad reward model config"):
        RewardModel(RewardConfig(latent_channels=4, action_dim=3, state=16, task_dim=2, state_reward=True))
    with pytest.raises(InputError, match="model.state_reward=true reads the reward off the odometry"):
        fit(RewardModel(RewardConfig(latent_channels=4, action_dim=3, state=16, task_dim=2)),
            _turning_walk(4, 8, 0, 10.0), TrainRewardConfig(steps=1, task_state=True,
                                                            model=RewardConfig(state_reward=True)), CPU)
    train, held = _turning_walk(96, 16, 0, 10.0), _turning_walk(16, 16, 1, 10.0)
    errors = {}
    for flag in (False, True):
        torch.manual_seed(0)
        model = RewardModel(replace(cfg, state_reward=flag))
        fit(model, train, TrainRewardConfig(steps=200, batch_size=16, seq_len=16, max_given=0, lr=1e-2, warmup=10,
                                            log_every=50, task_state=True, still_fraction=0.0), CPU)
        errors[flag] = evaluate(model, held, CPU, given=0)["reward_mae"]
    assert errors[True] < 0.6 * errors[False], errors  # measured 0.0010 against 0.0023


def _arriving_walk(episodes: int, length: int, seed: int) -> Transitions:
    """`_turning_walk` whose steps end the episode (+1 on top of the shaping) where the next frame's latent channel 0
    turns bright, about one in eight: what ends a step shows in the frames, never in the goal's point."""
    walk = _turning_walk(episodes, length, seed, 10.0)
    g = torch.Generator().manual_seed(seed + 100)
    ends = torch.rand(len(walk), generator=g) < 0.125
    latents = walk.latents.float()
    latents[walk.next[ends], 0] += 3.0
    return replace(walk, latents=latents.half(), rewards=walk.rewards + ends.float(), terminated=ends)


def test_terminal_reward_pays_an_ending_step_read_off_the_frames():
    """model.terminal_reward: a step that ends the episode is paid by its own head (reading the frames too), the
    state head learns the steps that go on. On a walk whose ending steps (+1) show only in the frames, a state-read
    reward pays them far less than +1; with the terminal head it pays them nearly +1 and the shaping no worse; the
    reward paid follows the termination returned at any threshold."""
    cfg = RewardConfig(latent_channels=4, width=8, depth=2, hidden=16, action_dim=3, state=16, task_dim=2,
                       odometry=True, turn_column=1, turn_scale=10.0, state_reward=True)
    train, held = _arriving_walk(96, 16, 0), _arriving_walk(16, 16, 1)
    paid, shaping = {}, {}
    for flag in (False, True):
        torch.manual_seed(0)
        model = RewardModel(replace(cfg, terminal_reward=flag))
        fit(model, train, TrainRewardConfig(steps=300, batch_size=16, seq_len=16, max_given=0, lr=1e-2, warmup=10,
                                            log_every=50, task_state=True, still_fraction=0.0), CPU)
        idx, scored, units, logit = run_episodes(model, held, CPU, given=0)
        reward, ends = model.reward(units)[scored], held.terminated[idx][scored]
        going = ~ends & (logit[scored] <= 0)  # steps that go on, and the model says so (a false end pays the +1)
        paid[flag] = float(reward[ends].mean())
        shaping[flag] = float((reward[going] - held.rewards[idx][scored][going]).abs().mean())
    assert paid[False] < 0.6 and paid[True] > 0.85, paid  # measured 0.0001 against 0.88
    assert shaping[True] < shaping[False], shaping  # 0.0009 against 0.0037: the +1 no longer pulls the state head
    a, b = held.latents[held.prev[:4]].float(), held.latents[held.next[:4]].float()
    state = model.with_point(model.initial(4, held.task[:4]), held.task[:4])
    for threshold in (0.0, 1.0):  # everything ends / nothing does: the ending head's reward / the other's
        reward, ends, _ = model.predict(a, b, held.actions[:4], state, threshold=threshold)
        assert bool(ends.all()) if threshold == 0.0 else not bool(ends.any())
        parts: list = []
        with torch.no_grad():
            model(a, b, held.actions[:4], state, parts)
        want = model.snap(model.reward(parts[0][1] if threshold == 0.0 else parts[0][0]))
        assert torch.equal(reward, want)
    # a stateless model (each transition alone) has the ending column too
    alone = RewardModel(RewardConfig(latent_channels=4, action_dim=3, state=0, terminal_reward=True))
    assert alone.predict(a, b, held.actions[:4])[0].shape == (4,)
