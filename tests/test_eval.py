"""`worldsim eval`: frame metrics (PSNR, SSIM), horizon metrics and dPSNR, the probes (IDM, attribute labels), the
command end to end on a tiny model (outputs, determinism, the probe cache) and its one-line errors.

A tiny store, VAE and DiT are built once per module (seconds on CPU); evaluations use tiny settings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from wm_helpers import one_line_error, tiny_store

from worldsim.cli import main as cli
from worldsim.eval import probes as P
from worldsim.eval.metrics import (
    detail,
    horizon_metrics,
    psnr_frames,
    psnr_uint8,
    random_actions,
    ssim_frames,
    ssim_uint8,
)

FAST = ["windows=2", "episodes=2", "steps=1", "horizons=[1,4,64]", "videos=1", "idm_steps=20", "attr_steps=20",
        "probe_size=16", "probe_pairs=96", "probe_batch=16", "t2v_samples=2"]



# tiny tensors gain nothing from threads, and on shared cores OpenMP threads spin against other processes
pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def world(tiny_pipeline, tmp_path_factory):
    """The session's tiny pipeline seen as train/ (3 episodes), held/ (2 episodes of other seeds), vae/ and dit/ (the
    full-attention run), linked into this module's own folder, where the evaluations write."""
    root = tmp_path_factory.mktemp("eval")
    for name, target in (("train", "store"), ("held", "heldout"), ("vae", "vae"), ("dit", "full")):
        (root / name).symlink_to(tiny_pipeline[target], target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def first_eval(world):
    out = world / "ev1"
    assert cli(["eval", f"ckpt={world / 'dit'}", f"store={world / 'held'}", f"out={out}", *FAST]) == 0
    return out


def _numbers(out: Path) -> dict:
    d = json.loads((out / "eval.json").read_text())
    d.pop("config")
    for part in ("idm", "text_adherence"):
        d[part].pop("cached", None)
    return d


# -- frame metrics -----------------------------------------------------------------------------------------------------
def test_ssim_of_identical_frames_is_one_and_falls_with_noise():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    assert ssim_uint8(a, a) == pytest.approx(1.0, abs=1e-12)
    scores = []
    for sigma in (5, 20, 60):
        noisy = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        scores.append(ssim_uint8(a, noisy))
    assert 1.0 > scores[0] > scores[1] > scores[2]
    with pytest.raises(ValueError, match="11x11"):
        ssim_frames(a[:, :8, :8], a[:, :8, :8])


def test_psnr_and_ssim_on_known_cases():
    a = np.zeros((1, 16, 16, 3), np.uint8)
    b = np.full((1, 16, 16, 3), 16, np.uint8)
    assert psnr_uint8(a, b) == pytest.approx(10 * np.log10(255**2 / 256))  # MSE 16^2
    assert psnr_frames(np.concatenate([a, a]), np.concatenate([a, b]))[1] == pytest.approx(24.0484, abs=1e-4)
    # constant frames: no variance, SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)
    c = np.full((1, 16, 16, 3), 100, np.uint8)
    d = np.full((1, 16, 16, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim_uint8(c, d) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))


def test_horizon_metrics_and_dpsnr_on_synthetic_rollouts():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (2 + 8, 16, 16, 3), dtype=np.uint8)
    noise = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    long = {"context": 2, "length": 8, "real": real, "model": real[2:], "random": noise}
    short = {**long, "length": 3, "real": real[:5], "model": real[2:5], "random": noise[:3]}
    m = horizon_metrics([long, short], [1, 8, 16])
    assert m["skipped"] == {"1": 0, "8": 1, "16": 2} and m["horizons"]["16"] is None
    h1 = m["horizons"]["1"]
    assert h1["episodes"] == 2 and h1["model_ssim"] == pytest.approx(1.0) and h1["dpsnr"] > 50
    assert h1["dpsnr"] == pytest.approx(h1["model_psnr"] - h1["random_psnr"])
    assert h1["detail_ratio"] == pytest.approx(1.0)  # the model's frames are the engine's


def test_detail_ratio_shows_blur_that_psnr_hides():
    """A blurred copy of the engine's frame scores a higher PSNR than a sharp frame with its edges in the wrong
    place, and a far lower detail ratio; detail itself: 0 for a flat frame, known for a checkerboard."""
    assert detail(np.full((1, 8, 8, 3), 90, np.uint8))[0] == 0
    board = (np.indices((8, 8)).sum(0) % 2 * 200).astype(np.uint8)[None, :, :, None].repeat(3, -1)
    assert detail(board)[0] == pytest.approx(200.0**2)  # every neighbour differs by 200
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 255, (12, 3, 4, 4)).astype(np.float32))
    real = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="nearest")  # blocky, sharp-edged scenes
    blurred = torch.nn.functional.avg_pool2d(real, 9, 1, 4, count_include_pad=False)
    shifted = torch.roll(real, 4, dims=3)
    as_u8 = [x.permute(0, 2, 3, 1).round().clamp(0, 255).numpy().astype(np.uint8) for x in (real, blurred, shifted)]
    real, blurred, shifted = as_u8
    rolls = [{"context": 1, "length": 1, "real": real[i : i + 2], "model": g[i + 1 : i + 2],
              "random": g[i + 1 : i + 2]} for i in range(0, 12, 2) for g in [blurred]]
    sharp = [{**r, "model": shifted[i + 1 : i + 2]} for r, i in zip(rolls, range(0, 12, 2))]
    mb, ms = horizon_metrics(rolls, [1])["horizons"]["1"], horizon_metrics(sharp, [1])["horizons"]["1"]
    assert mb["model_psnr"] > ms["model_psnr"]
    assert mb["detail_ratio"] < 0.5 and 0.8 < ms["detail_ratio"] < 1.3  # (the roll adds one wrapped edge)


def test_sharp_dream_seams_see_a_token_grid_not_scenes():
    """benchmarks/sharp_dream.py `seams`: scenes with edges anywhere score low; the same scenes blurred score near 0,
    and with faint seams every 8 pixels (a token grid) well above, at that period only."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sharp_dream.py"
    spec = importlib.util.spec_from_file_location("sharp_dream", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 255, (32, 3, 6, 6)).astype(np.float32))
    blocks = torch.nn.functional.interpolate(coarse, size=(78, 78), mode="nearest")  # 13-px blocks
    at = rng.integers(0, 13, (32, 2))  # each scene's blocks start anywhere
    scenes = torch.stack([b[:, y : y + 64, x : x + 64] for b, (y, x) in zip(blocks, at)])
    soft = torch.nn.functional.avg_pool2d(scenes, 9, 1, 4, count_include_pad=False)
    grid = soft.clone()
    grid[..., 7::8] += 6.0  # a faint seam at the last column and row of every 8 x 8 token
    grid[..., 7::8, :] += 6.0
    u8 = [x.permute(0, 2, 3, 1).round().clamp(0, 255).numpy().astype(np.uint8) for x in (scenes, soft, grid)]
    scenes, soft, grid = u8
    # 32 scenes of a few strong edges each: some phase gets more of them by chance (the engine's frames: 0.1-0.3)
    assert mod.seams(scenes, 8) < 0.35 and mod.seams(soft, 8) < 0.12
    assert mod.seams(grid, 8) > 0.3 and mod.seams(grid, 8) > 4 * mod.seams(soft, 8)
    assert mod.seams(grid, 7) < 0.12  # another period: the seams fall at every phase


def test_stripes_find_bands_of_any_period_not_scenes():
    """`stripes`: scenes of rectangles anywhere (sharp, or blurred as a dream's new content is) score low on both
    axes; faint lines every 4 rows stand out on the rows axis only, every 5 columns on the columns axis only, a
    token grid's seams on both; frames too small, or none: None."""
    from worldsim.eval.metrics import stripes

    rng = np.random.default_rng(1)
    scenes = np.zeros((40, 64, 64, 3))
    for f in scenes:  # edges anywhere: a backdrop and ten rectangles of random size, place and colour
        f[:] = rng.uniform(0, 255, 3)
        for _ in range(10):
            (y, x), (h, w) = rng.integers(-20, 64, 2), rng.integers(4, 40, 2)
            f[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = rng.uniform(0, 255, 3)
    g = torch.exp(-torch.arange(-6.0, 7.0) ** 2 / 8)  # gaussian blur, sigma 2
    g = (g / g.sum()).double()
    t = torch.from_numpy(scenes).permute(0, 3, 1, 2).reshape(-1, 1, 64, 64)
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (6, 6, 6, 6), mode="replicate"),
                                   (g[:, None] * g[None, :])[None, None])
    soft = t.reshape(40, 3, 64, 64).permute(0, 2, 3, 1).numpy()
    rows, cols, grid = soft.copy(), soft.copy(), soft.copy()
    rows[:, 2::4] += 3  # a 3-level line every 4 rows
    cols[:, :, 1::5] += 3
    grid[:, 7::8] += 3
    grid[:, :, 7::8] += 3

    def u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)

    for plain in (scenes, soft):
        got = stripes(u8(plain))
        assert got["rows"]["peak"] < 4 and got["cols"]["peak"] < 4
    r, c, k = stripes(u8(rows)), stripes(u8(cols)), stripes(u8(grid))
    assert r["rows"]["peak"] > 100 and r["rows"]["period"] in (4, 2) and r["cols"]["peak"] < 4
    harmonic = 5 / c["cols"]["period"]  # period 5, or one of its harmonics (5 / 2, 5 / 3, ...), binned by 64 / 13
    assert c["cols"]["peak"] > 10 and abs(harmonic - round(harmonic)) < 0.1 and c["rows"]["peak"] < 4
    assert k["rows"]["peak"] > 30 and k["cols"]["peak"] > 30
    assert stripes(u8(soft)[:, :12, :12]) is None and stripes(np.zeros((0, 64, 64, 3), np.uint8)) is None
    assert stripes(np.full((2, 16, 16, 3), 7, np.uint8))["rows"] == {"peak": 0.0, "period": None}  # nothing varies


def test_random_actions_are_a_seeded_permutation_of_store_rows():
    pool = np.arange(20, dtype=np.float32).reshape(10, 2)
    a = random_actions(pool, 6, np.random.default_rng(3))
    assert np.array_equal(a, random_actions(pool, 6, np.random.default_rng(3)))
    assert len({tuple(r) for r in a}) == 6 and all(tuple(r) in {tuple(p) for p in pool} for r in a)


# -- probes ----------------------------------------------------------------------------------------------------------
def _shift_pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Smooth textures that move right (key pressed) or left by 1-2 px; the shift is also a continuous column."""
    right = rng.integers(0, 2, n)
    amount = rng.integers(1, 3, n)
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, 5, 6)).astype(np.float32))
    frames = torch.nn.functional.interpolate(coarse, size=(16, 20), mode="bilinear", align_corners=False)
    frames = frames.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()
    pairs = np.stack([np.stack([f[:, 2:18], np.roll(f, s if r else -s, axis=1)[:, 2:18]])
                      for f, r, s in zip(frames, right, amount)])
    acts = np.stack([right, np.where(right, amount, -amount)], axis=1).astype(np.float32)
    return pairs, acts


def test_idm_learns_a_learnable_action_better_than_chance():
    spec = {"type": "Dict", "flat_keys": ["right", "shift"],
            "spaces": {"right": {"type": "Discrete", "n": 2}, "shift": {"type": "Box", "shape": [1]}}}
    assert P.action_columns(spec, 2) == [("right", "binary", 1), ("shift", "continuous", 1)]
    rng = np.random.default_rng(0)
    pairs, acts = _shift_pairs(256, rng)
    data = {"pairs": P.resize(pairs, 16), "actions": acts, "scale": np.array([1.0, 2.0], np.float32)}
    cfg = P.ProbeConfig(steps=100, batch_size=32, size=16, width=8, lr=3e-3, seed=0)
    idm, _ = P.train_idm(data, spec, cfg)
    test_pairs, test_acts = _shift_pairs(128, np.random.default_rng(1))
    scores = P.score_actions(idm.columns, idm.predict(P.resize(test_pairs, 16)), test_acts)
    assert scores["keys"]["right"]["f1"] > 0.8  # chance: about 0.5
    assert scores["keys"]["shift"]["mae"] < np.abs(test_acts[:, 1]).mean()  # better than predicting 0
    again, _ = P.train_idm(data, spec, cfg)  # seeded: the same weights
    assert all(torch.equal(x, y) for x, y in zip(idm.state_dict().values(), again.state_dict().values()))


def test_attribute_labels_follow_the_caption_grammar():
    assert P.attribute_labels("snowy land at night, walking") == {"biome": "snow", "time_of_day": "night"}
    assert P.attribute_labels("beach in the morning, walking and mining") == {"biome": "beach",
                                                                              "time_of_day": "morning"}
    assert P.attribute_labels("three objects on a wooden table, collisions") == {"scene": "table"}
    assert P.usable_attributes(["plains at dusk, walking", "plains at night, walking"]) == {
        "time_of_day": ["dusk", "night"]}
    chosen = P.pick_prompts(["plains at dusk, x", "plains at dusk, y", "plains at night, x"],
                            {"time_of_day": ["dusk", "night"]}, 2, lambda p: True)
    assert chosen == ["plains at dusk, x", "plains at night, x"]


# -- the command -----------------------------------------------------------------------------------------------------
def test_eval_writes_every_metric_the_plot_and_videos(first_eval, world):
    d = json.loads((first_eval / "eval.json").read_text())
    nf = d["next_frame"]
    for k in ("next_frame_psnr", "next_frame_ssim", "vae_reconstruction_psnr", "vae_reconstruction_ssim",
              "copy_last_frame_psnr", "copy_last_frame_ssim"):
        assert np.isfinite(nf[k]), k
    ro = d["rollout"]
    assert set(ro["horizons"]) == {"1", "4", "64"} and ro["horizons"]["64"] is None and ro["skipped"]["64"] == 2
    for k in ("model_psnr", "model_ssim", "random_psnr", "copy_last_psnr", "dpsnr"):
        assert np.isfinite(ro["horizons"]["4"][k]), k
    gen = d["idm"]["generated"]
    assert {"forward", "camera_yaw", "hotbar"} <= set(gen["keys"]) and "real" in d["idm"]
    assert gen["keys"]["camera_yaw"]["kind"] == "continuous" and gen["keys"]["hotbar"]["kind"] == "discrete"
    text = d["text_adherence"]
    assert "skipped" not in text and text["attributes"] and len(text["samples"]) == 2  # the store names biomes
    assert all({"accuracy", "real_accuracy", "chance", "values"} <= set(r) for r in text["attributes"].values())
    assert d["checkpoint"]["digest"] and d["store"]["digest"] and d["config"]["seed"] == 0
    assert (first_eval / "psnr_vs_horizon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    videos = sorted((first_eval / "videos").glob("episode_*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    import imageio.v3 as iio

    frame = iio.imread(videos[0], index=0)
    assert frame.shape == (32, 66, 3)  # engine | 2 px | model
    report = (first_eval / "report.md").read_text()
    assert "psnr_vs_horizon.png" in report and "videos/episode_" in report and "dPSNR" in report
    assert {p.name for p in (first_eval / "idm").iterdir()} >= {"idm.safetensors", "idm.json"}


def test_eval_is_deterministic_and_reuses_cached_probes(first_eval, world, capsys):
    out = world / "ev2"
    argv = ["eval", f"ckpt={world / 'dit'}", f"store={world / 'held'}", f"out={out}", *FAST]
    assert cli(argv) == 0  # fresh probes, trained again from the same seed
    assert _numbers(out) == _numbers(first_eval)
    assert cli(argv) == 0
    d = json.loads((out / "eval.json").read_text())
    assert d["idm"]["cached"] is True and _numbers(out) == _numbers(first_eval)


def test_eval_bad_inputs_are_one_line_errors(world, capsys, tmp_path):
    base = ["eval", f"ckpt={world / 'dit'}", f"out={tmp_path / 'o'}", *FAST]
    assert "store is required" in one_line_error(capsys, cli, base)
    assert "no store at" in one_line_error(capsys, cli, [*base, f"store={tmp_path / 'missing'}"])
    other = tmp_path / "other"
    shutil.copytree(world / "held", other)
    root = zarr.open_group(str(other), mode="r+")
    root.attrs["action_spec"] = {"type": "Box", "flat_keys": ["push_x", "push_y"], "shape": [2]}
    assert "action spec" in one_line_error(capsys, cli, [*base, f"store={other}"])
    short = tmp_path / "short"
    tiny_store(short, episodes=1, steps=1, seed=5)  # 2 rows: shorter than the 4-frame window
    err = one_line_error(capsys, cli, [*base, f"store={short}"])
    assert "shorter than the model's window" in err
    assert "horizons" in one_line_error(capsys, cli, [*base, f"store={world / 'held'}", "horizons=[]"])


def test_find_revisits_needs_a_turn_away_and_back_standing_still():
    from envs.voxel.actions import FLAT_KEYS
    from worldsim.eval.metrics import find_revisits

    spec = {"flat_keys": list(FLAT_KEYS)}
    yaw, fwd = FLAT_KEYS.index("camera_yaw"), FLAT_KEYS.index("forward")
    acts = np.zeros((30, len(FLAT_KEYS)), np.float32)
    acts[5:10, yaw] = 32.0  # 160 degrees away in 5 steps, back in 4: leaves frame 5, far at 10, home at 14
    acts[10:14, yaw] = -40.0
    assert find_revisits(acts, spec) == [(5, 10, 14)]
    shallow = acts.copy()
    shallow[5:10, yaw], shallow[10:14, yaw] = 20.0, -25.0  # 100 degrees: not far enough
    walking = acts.copy()
    walking[8, fwd] = 1  # moved during the excursion: the view on return is another one
    slow = np.zeros((30, len(FLAT_KEYS)), np.float32)
    slow[0:8, yaw], slow[8:16, yaw] = 20.0, -20.0  # back only after 16 actions
    for other in (shallow, walking, slow):
        assert find_revisits(other, spec) == []
    assert find_revisits(acts, {"flat_keys": ["x"]}) == []  # another game: no camera, no revisit


def test_lookback_policy_episodes_return_to_the_view_they_left():
    import gymnasium as gym

    import envs  # noqa: F401
    from datagen.policies import LookBackPolicy
    from envs.voxel.actions import FLAT_KEYS, to_flat
    from worldsim.eval.metrics import find_revisits

    env = gym.make("worldsim/Voxel-v0", width=32, height=32)
    obs, info = env.reset(seed=3)
    policy = LookBackPolicy(np.random.default_rng(3))
    frames, acts = [obs], []
    for _ in range(80):
        a = policy.act(info)
        acts.append(to_flat(a))
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
    found = find_revisits(np.stack(acts), {"flat_keys": list(FLAT_KEYS)})
    assert len(found) >= 2, found
    for leave, far, back in found:
        assert back - leave <= 12 and leave < far < back
        assert psnr_uint8(frames[back], frames[leave]) > 30.0  # the engine shows the view it left
        assert psnr_uint8(frames[far], frames[leave]) < 25.0  # and had looked somewhere else
