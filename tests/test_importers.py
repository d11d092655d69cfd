"""Importers (MineRL v0.4, OpenAI VPT) and the LeRobot v3.0 exporter, on tiny files written in the real formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

import store as S
from datagen.io import importers as I
from envs.voxel.actions import FLAT_KEYS
from worldsim.cli import main as cli

C = {k: i for i, k in enumerate(FLAT_KEYS)}
BUTTONS = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack")


def _video(path: Path, n: int, h: int, w: int) -> None:
    """n frames of flat grey, frame t at level 10 + 8 t: which source frame a stored one is can be read back."""
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=20, codec="libx264", pix_fmt_out="yuv444p",
                                      quality=None, macro_block_size=1, output_params=["-crf", "0"])
    gen.send(None)
    for t in range(n):
        gen.send(np.full((h, w, 3), 10 + 8 * t, np.uint8).tobytes())
    gen.close()


def _level(frames: np.ndarray) -> np.ndarray:
    return np.round((frames.reshape(len(frames), -1).mean(axis=1) - 10) / 8)  # the source frame index


def _minerl(folder: Path, n: int, loading: int, size: tuple[int, int], success: bool, meta_frames: bool = True,
            **extra: np.ndarray) -> None:
    folder.mkdir(parents=True)
    _video(folder / "recording.mp4", loading + n + 1, *size)
    acts = {f"action${k}": np.zeros(n, np.int64) for k in BUTTONS}
    acts["action$forward"][: n // 2] = 1
    acts["action$attack"][2:] = 1
    acts["action$camera"] = np.tile(np.array([[2.0, -6.0]], np.float32), (n, 1))  # [pitch, yaw] degrees
    acts["action$place"] = np.array(["none"] * n, dtype="<U16")
    acts["action$place"][1] = "dirt"
    acts["action$craft"] = np.array(["none"] * n, dtype="<U16")
    acts["action$craft"][3] = "planks"
    reward = np.zeros(n, np.float32)
    reward[4] = 1.0
    log = np.zeros(n + 1, np.int64)  # one observation per state: n + 1 rows
    log[5:] = 2
    arrays = {**acts, **extra, "observation$inventory$log": log}
    np.savez_compressed(folder / "rendered.npz", **{"reward": reward, **arrays})  # `extra` may replace the reward
    meta = {"success": success, "duration_ms": n * 50, "duration_steps": n, "total_reward": 1.0,
            "stream_name": folder.name}
    if meta_frames:
        meta["true_video_frame_count"] = loading + n + 1
    (folder / "metadata.json").write_text(json.dumps(meta))


def _vpt_line(t: int, keys=(), buttons=(), new_buttons=(), gui=False, hotbar=0, dx=20.0, dy=-10.0) -> str:
    return json.dumps({"mouse": {"x": 0.0, "y": 0.0, "dx": dx, "dy": dy, "scaledX": 0.0, "scaledY": 0.0,
                                 "dwheel": 0.0, "buttons": list(buttons), "newButtons": list(new_buttons)},
                       "keyboard": {"keys": list(keys), "newKeys": [], "chars": ""}, "isGuiOpen": gui,
                       "isGuiInventory": gui, "hotbar": hotbar, "yaw": 0.0, "pitch": 0.0, "tick": t})


def _vpt(folder: Path, name: str, lines: list[str], frames: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _video(folder / f"{name}.mp4", frames, 18, 32)
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.mp4"


@pytest.fixture(scope="module")
def minerl(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("minerl")
    _minerl(root / "MineRLTreechop-v0" / "v3_a", n=12, loading=3, size=(16, 16), success=True)
    _minerl(root / "MineRLNavigate-v0" / "v3_b", n=7, loading=2, size=(16, 24), success=False, meta_frames=False,
            **{"action$hotbar.4": np.array([0, 0, 1, 0, 0, 0, 0])})
    return root


@pytest.fixture(scope="module")
def minerl_store(minerl, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("stores") / "minerl")
    I.import_minerl(minerl, out)
    return out


@pytest.fixture(scope="module")
def vpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vpt")
    lines = [_vpt_line(t, keys=["key.keyboard.w"] * (t < 5) + ["key.keyboard.3"] * (t == 6),
                       # attack held from the start is the recorder's stuck-button bug until pressed anew at t=4
                       buttons=[0] * (t < 3 or t >= 4), new_buttons=[0] * (t in (0, 4)), gui=t == 8,
                       hotbar=2 if t >= 7 else 0) for t in range(10)]
    _vpt(root / "8.0", "cheeky-a", lines, frames=11)  # one frame more than lines: every action is used
    _vpt(root / "8.0", "cheeky-b", [_vpt_line(t) for t in range(6)], frames=6)  # as many: the last one is dropped
    return root


def test_minerl_import_alignment_and_action_mapping(minerl_store):
    summary = S.validate(minerl_store)
    assert summary["episodes"] == 2 and summary["resolutions"] == ["16x16", "16x24"] and summary["fps"] == 20
    assert summary["env_ids"] == ["minerl:MineRLNavigate-v0", "minerl:MineRLTreechop-v0"]
    root = S.open_root(minerl_store, "r")
    for bucket, n, loading, success in (("b_16x16", 12, 3, True), ("b_16x24", 7, 2, False)):
        b = root[bucket]
        frames, acts = b["data/frames"][...], b["data/actions"][...]
        # N actions -> N + 1 states; the leading loading frames of the video are skipped
        assert len(frames) == n + 1 and b["meta/episode_ends"][...].tolist() == [n + 1]
        np.testing.assert_array_equal(_level(frames), np.arange(loading, loading + n + 1))
        assert b["data/is_last"][...].tolist() == [False] * n + [True]
        assert not acts[-1].any() and b["data/rewards"][-1] == 0  # the final observation's no-op
        np.testing.assert_array_equal(acts[:-1, C["forward"]], np.arange(n) < n // 2)
        np.testing.assert_array_equal(acts[:-1, C["attack"]], np.arange(n) >= 2)
        np.testing.assert_allclose(acts[:-1, C["camera_pitch"]], 2.0)  # MineRL camera is [pitch, yaw], our order
        np.testing.assert_allclose(acts[:-1, C["camera_yaw"]], -6.0)
        np.testing.assert_array_equal(acts[:-1, C["use"]], np.arange(n) == 1)  # place -> use (right click)
        assert b["data/rewards"][4] == 1.0
        assert b["data/terminated"][n - 1] == success and b["data/truncated"][n - 1] == (not success)
        dense = S.read_texts(b, "episode_dense")[0]
        assert "turning left" in dense and "gains two log" in dense and "crafts planks" in dense
        events = json.loads(S.read_texts(b, "episode_events")[0])
        assert {"step": 4, "type": "reward", "value": 1.0} in events
        assert {"step": 4, "type": "inventory_gained", "item": "log", "count": 2} in events  # state 4 -> 5
    assert root["b_16x24"]["data/actions"][2, C["hotbar"]] == 4
    assert root.attrs["action_spec"]["flat_keys"] == list(FLAT_KEYS)
    card = (Path(minerl_store) / "DATASET.md").read_text()
    assert "MineRL" in card and "MineRLTreechop-v0/v3_a/rendered.npz" in card and root.attrs["digest"] in card


def test_vpt_import_mapping_camera_scale_and_stuck_attack(vpt, tmp_path):
    out = str(tmp_path / "vpt")
    I.import_vpt(vpt, out)
    assert S.validate(out)["episodes"] == 2
    b = S.open_root(out, "r")["b_18x32"]
    ends = b["meta/episode_ends"][...].tolist()
    assert ends == [11, 17]  # 10 lines + 11 frames -> 11 rows; 6 lines + 6 frames -> 6 rows
    acts = b["data/actions"][...]
    np.testing.assert_array_equal(_level(b["data/frames"][...]), [*range(11), *range(6)])
    a = acts[:11]
    np.testing.assert_array_equal(a[:10, C["forward"]], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(a[:10, C["attack"]], [0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    live = np.arange(10) != 8  # row 8: a screen is open, the game ignores inputs
    np.testing.assert_allclose(a[:10][live, C["camera_yaw"]], 20 * 360 / 2400)  # mouse right -> turn right
    np.testing.assert_allclose(a[:10][live, C["camera_pitch"]], -10 * 360 / 2400)  # mouse up -> look up
    assert not a[8].any() and not a[10].any()
    assert a[6, C["hotbar"]] == 3 and a[7, C["hotbar"]] == 0  # key 3, then the hotbar field agrees: no repeat
    assert b["data/truncated"][9] and not b["data/terminated"][...].any()
    assert not acts[16].any() and acts[15, C["camera_yaw"]] == 3.0  # short video: line 5 had no next frame
    dense = S.read_texts(b, "episode_dense")[0]
    assert "turning right" in dense and "hotbar slot 3" in dense and "screen" in dense
    assert S.read_texts(b, "episode_policy")[0] == "human player (vpt recording 8.0/cheeky-a)"
    # resize on import: one file as src, frames at the asked size
    small = str(tmp_path / "small")
    I.import_vpt(vpt / "8.0" / "cheeky-a.jsonl", small, width=16, height=10)
    assert S.validate(small)["resolutions"] == ["10x16"]
    with pytest.raises(S.StoreError, match="other settings.*width"):
        I.import_vpt(vpt / "8.0" / "cheeky-a.mp4", small, width=8, height=6)


def test_bad_inputs_give_clear_errors_and_write_nothing(minerl, vpt, tmp_path):
    def broken(name: str, **kw) -> Path:
        folder = tmp_path / name / "MineRLTreechop-v0" / "v3_x"
        _minerl(folder, n=6, loading=0, size=(16, 16), success=False, **kw)
        return folder

    f = broken("nometa")
    (f / "metadata.json").unlink()
    cases = [(f, "metadata.json is missing")]
    cases.append((broken("rows", **{"action$jump": np.zeros(5, np.int64)}), "action\\$jump has shape"))
    cases.append((broken("key", **{"action$teleport": np.zeros(6)}), "unknown action key.*teleport"))
    cases.append((broken("nanreward", reward=np.array([0, 0, np.nan, 0, 1, 0], np.float32)),
                  "reward has non-finite values \\(first at row 2\\)"))
    cases.append((broken("button7", **{"action$jump": np.array([0, 1, 7, 0, 0, 0])}),
                  "action\\$jump must hold 0 \\(released\\) or 1 \\(pressed\\); row 2 holds 7"))
    cases.append((broken("button-1", **{"action$attack": np.array([0, -1, 0, 0, 0, 0])}), "row 1 holds -1"))
    cases.append((broken("nancamera", **{"action$camera": np.full((6, 2), np.inf)}), "camera has non-finite"))
    f = broken("corrupt")
    (f / "rendered.npz").write_bytes(b"not a zip")
    cases.append((f, "not a readable .npz"))
    f = broken("steps")
    (f / "metadata.json").write_text(json.dumps({"duration_steps": 9, "true_video_frame_count": 7}))
    cases.append((f, "duration_steps=9"))
    for src, message in cases:
        with pytest.raises(S.StoreError, match=message):
            I.import_minerl(src, str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()  # every file is checked before anything is written
    f = broken("pickled", **{"action$equip": np.array(["none", "wooden_axe", "none", "none", "none", "none"], object)})
    with pytest.raises(S.StoreError, match="pickled Python objects.*allow_pickle"):
        I.import_minerl(f, str(tmp_path / "never"))
    I.import_minerl(f, str(tmp_path / "trusted"), allow_pickle=True)  # a file you trust
    trusted = S.open_root(str(tmp_path / "trusted"), "r")["b_16x16"]
    assert "equips wooden axe" in S.read_texts(trusted, "episode_dense")[0]
    f = broken("short")
    (f / "metadata.json").write_text(json.dumps({"duration_steps": 6, "true_video_frame_count": 11}))
    with pytest.raises(S.StoreError, match="recording.mp4 has 7 frames: too few"):
        I.import_minerl(f, str(tmp_path / "short_out"))

    v = tmp_path / "v"
    _vpt(v, "badjson", [_vpt_line(0), _vpt_line(1), "{oops"], frames=4)
    with pytest.raises(S.StoreError, match="badjson.jsonl:3: not valid JSON"):
        I.import_vpt(v / "badjson.mp4", str(tmp_path / "o1"))
    _vpt(v, "nomouse", [_vpt_line(0), json.dumps({"keyboard": {"keys": []}})], frames=3)
    with pytest.raises(S.StoreError, match="nomouse.jsonl:2: not a VPT action"):
        I.import_vpt(v / "nomouse.jsonl", str(tmp_path / "o2"))
    _vpt(v, "long", [_vpt_line(t) for t in range(3)], frames=5)
    with pytest.raises(S.StoreError, match="more than 4 frames"):
        I.import_vpt(v / "long.mp4", str(tmp_path / "o3"))
    (v / "alone.jsonl").write_text(_vpt_line(0))
    with pytest.raises(S.StoreError, match="alone.mp4 is missing"):
        I.import_vpt(v / "alone.jsonl", str(tmp_path / "o4"))
    with pytest.raises(ValueError, match="width and height"):
        I.import_vpt(vpt, str(tmp_path / "o5"), width=16)


def test_cli_import_and_errors(vpt, tmp_path, capsys):
    assert cli(["import", str(vpt / "8.0" / "cheeky-b.mp4"), f"out={tmp_path / 's'}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["format"] == "vpt"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    for args in (["import", str(tmp_path / "junk")], ["import", str(vpt), "format=atari"],
                 ["import", str(vpt), f"out={tmp_path / 'junk'}"], ["export-lerobot", str(tmp_path / "nowhere")]):
        assert cli(args) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1 and "error:" in err, err


def test_export_lerobot_layout_and_row_counts(minerl_store, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    from datagen.io.lerobot import export_lerobot

    outs = export_lerobot(minerl_store, tmp_path / "lr", crf=0)
    assert [o.name for o in outs] == ["16x16", "16x24"]  # one dataset per resolution bucket
    root = S.open_root(minerl_store, "r")
    for out, bucket in zip(outs, ("b_16x16", "b_16x24")):
        b = root[bucket]
        info = json.loads((out / "meta/info.json").read_text())
        n = b["data/frames"].shape[0]
        assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["total_frames"] == n
        assert info["features"]["action"]["names"] == list(FLAT_KEYS)
        assert info["features"]["observation.image"]["shape"] == list(b["data/frames"].shape[1:])
        data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
        assert len(data["index"]) == n and data["frame_index"] == list(range(n))
        np.testing.assert_allclose(np.array(data["action"]), b["data/actions"][...])
        assert data["next.done"] == b["data/is_last"][...].tolist()
        episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
        assert [(e["dataset_from_index"], e["dataset_to_index"], e["length"]) for e in episodes] == [(0, n, n)]
        assert episodes[0]["tasks"] == S.read_texts(b, "episode_short")
        assert episodes[0]["videos/observation.image/to_timestamp"] == pytest.approx(n / 20)
        video = out / "videos/observation.image/chunk-000/file-000.mp4"
        assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == n
        reader = imageio_ffmpeg.read_frames(str(video))
        h, w = next(reader)["size"][::-1]
        decoded = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])
        assert np.abs(decoded.astype(int) - b["data/frames"][...]).mean() < 3  # 4:2:0 H.264 is lossy even at crf 0
        tasks = pq.read_table(out / "meta/tasks.parquet")
        assert tasks.column("task").to_pylist() == episodes[0]["tasks"]
        assert b'"index_columns": ["task"]' in tasks.schema.metadata[b"pandas"]  # read by LeRobot as the index
        stats = json.loads((out / "meta/stats.json").read_text())
        _check_lerobot_stats(stats, episodes, data, b)
        assert pq.ParquetFile(out / "data/chunk-000/file-000.parquet").metadata.num_row_groups == len(episodes)
    with pytest.raises(ValueError, match="not an empty folder"):
        export_lerobot(minerl_store, tmp_path / "lr")
    assert cli(["export-lerobot", minerl_store, f"out={tmp_path / 'lr2'}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 2


def _check_lerobot_stats(stats: dict, episodes: list[dict], data: dict, b) -> None:
    """stats.json and the per-episode `stats/...` columns as LeRobot writes them: every numeric feature, with
    min/max/mean/std/count and the quantiles q01..q99, images per channel (3, 1, 1) in [0, 1]."""
    names = {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert set(stats) == {"action", "next.reward", "next.done", "next.terminated", "next.truncated", "timestamp",
                          "frame_index", "episode_index", "index", "task_index", "observation.image"}
    for key, feats in stats.items():
        assert set(feats) == names, key
    actions = np.array(data["action"])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["action"]["q50"], np.quantile(actions, 0.5, axis=0), atol=1e-6)
    assert stats["action"]["count"] == [len(actions)] and stats["index"]["max"] == [len(actions) - 1]
    img = np.array(stats["observation.image"]["mean"])
    assert img.shape == (3, 1, 1) and img.min() >= 0 and img.max() <= 1
    np.testing.assert_allclose(img[:, 0, 0], b["data/frames"][...].reshape(-1, 3).mean(0) / 255, atol=1e-3)
    for e in episodes:
        for key in stats:
            assert {f"stats/{key}/{n}" for n in names} <= set(e), key
        n = e["length"]
        assert e["stats/action/count"] == [n]
        np.testing.assert_allclose(e["stats/action/max"], actions[e["dataset_from_index"]:e["dataset_to_index"]].max(0))


def test_export_lerobot_lossless_is_bit_exact(minerl_store, tmp_path):
    pytest.importorskip("pyarrow")
    from datagen.io.lerobot import export_lerobot

    outs = export_lerobot(minerl_store, tmp_path / "exact", lossless=True)
    root = S.open_root(minerl_store, "r")
    for out, bucket in zip(outs, ("b_16x16", "b_16x24")):
        frames = root[bucket]["data/frames"][...]
        reader = imageio_ffmpeg.read_frames(str(out / "videos/observation.image/chunk-000/file-000.mp4"))
        h, w = next(reader)["size"][::-1]
        decoded = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])
        assert np.array_equal(decoded, frames)
        info = json.loads((out / "meta/info.json").read_text())["features"]["observation.image"]["info"]
        assert info["video.pix_fmt"] == "rgb24" and info["video.lossless"] is True


def test_export_lerobot_without_pyarrow_says_what_to_install(minerl_store, tmp_path, monkeypatch):
    from datagen.io.lerobot import export_lerobot

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    with pytest.raises(ImportError, match=r"worldsim\[lerobot\]"):
        export_lerobot(minerl_store, tmp_path / "x")


def test_import_resumes_after_interruption_with_the_same_digest(minerl, minerl_store, tmp_path):
    out = str(tmp_path / "resumed")

    def interrupt(episodes: int, frames: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        I.import_minerl(minerl, out, progress=interrupt)
    assert list(S.staged_episodes(S.open_root(out, "r"))) == [0]  # the first recording is kept
    assert I.import_minerl(minerl, out)["digest"] == S.open_root(minerl_store, "r").attrs["digest"]
