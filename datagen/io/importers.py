"""Import recorded Minecraft play into worldsim stores: MineRL v0.4 trajectories and OpenAI VPT contractor data.

Both are mapped to the voxel world's flat action spec (`envs.voxel.actions`) and to the store's alignment:
`actions[t]` is taken after observing `frames[t]`; the last row is the final observation with a no-op action.
Captions cannot come from engine ground truth here: they say only what the recording shows for sure (the keys
pressed, camera turns, clicks, rewards, inventory changes, the task and its outcome). docs/dataset.md has the tables.

MineRL v0.4 (`<data>/<EnvName>/<stream>/{recording.mp4, rendered.npz, metadata.json}`), as minerllabs/minerl
v0.4 writes and reads it (minerl/data/pipeline/publish.py, minerl/data/data_pipeline.py):
  - `reward` and every `action$<key>` have N rows (N = metadata `duration_steps`); `observation$<key>` arrays have
    N + 1, one per state: publish.py drops the first action packet ("the action packet is one off"), so
    `action[t]` is taken in state t and `reward[t]` results from it, which is our alignment already.
  - recording.mp4 (64x64, 20 fps) has `true_video_frame_count` >= N + 1 frames: the first
    `true_video_frame_count - (N + 1)` show the game loading and are skipped; the rest are states 0..N.
    (data_pipeline.py also overwrites the very last frame with the one before; we keep the recorded frame.)
OpenAI VPT (`NAME.mp4` 640x360 at 20 fps + `NAME.jsonl`, one JSON object per frame): line t holds the input
recorded while frame t was shown (data_loader.py reads one frame per line); the mapping, the camera scale and the
stuck-attack fix follow openai/Video-Pre-Training run_inverse_dynamics_model.py and data_loader.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import store as S
from datagen.captions import _list, _n, _pick
from datagen.quality import segment_quality
from datagen.rollout import segment_bounds
from envs.voxel.actions import FLAT_KEYS, action_spec_json

FPS = 20  # both sources record at Minecraft's 20 ticks per second
COL = {k: i for i, k in enumerate(FLAT_KEYS)}
CAMERA_SCALER = 360.0 / 2400.0  # VPT: degrees of camera turn per mouse count (MineRL's Java sensitivity)
VPT_KEYS = {"key.keyboard.w": "forward", "key.keyboard.s": "back", "key.keyboard.a": "left",
            "key.keyboard.d": "right", "key.keyboard.space": "jump", "key.keyboard.left.shift": "sneak",
            "key.keyboard.left.control": "sprint", **{f"key.keyboard.{k}": f"hotbar.{k}" for k in range(1, 10)}}
MINERL_BUTTONS = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack", "use")
MINERL_ITEMS = {"place": "placed", "craft": "crafted", "nearbyCraft": "crafted", "nearbySmelt": "smelted",
                "equip": "equipped"}  # string-valued actions ("none" = not used): kept as events only
MINERL_IGNORED = ("drop", "inventory", "ESC", "swapHands", "pickItem")  # no voxel counterpart
MINERL_KNOWN = (*MINERL_BUTTONS, "camera", *MINERL_ITEMS, *MINERL_IGNORED, *(f"hotbar.{k}" for k in range(1, 10)))
LICENCES = {
    "minerl": "third-party data: MineRL-v0 human demonstrations (Guss et al., IJCAI 2019, minerl.io), under the "
              "MineRL dataset's terms; check them before redistributing",
    "vpt": "third-party data: OpenAI VPT contractor demonstrations (github.com/openai/Video-Pre-Training); its "
           "README states no data licence (the code is MIT); check OpenAI's terms before redistributing",
}
ALIGNMENT = ("actions[t] is taken after observing frames[t]; rewards[t] and terminated[t] result from it; the last "
             "row is the final observation with a no-op action")


@dataclass
class Recording:
    """One source recording, parsed and mapped to the voxel action spec; its video is decoded later."""

    name: str
    env_id: str
    video: Path
    files: list[Path]
    actions: np.ndarray  # (N, A) flat actions of the recorded steps
    rewards: np.ndarray  # (N,)
    events: list[list[dict[str, Any]]]  # (N,) what each step caused
    rows: tuple[int, int]  # (fewest, most) frames the episode may have
    skip: int | None = 0  # leading video frames before the first state; None: count them when decoding
    strict_end: bool = False  # more frames than rows[1] is an error (else they are ignored)
    success: bool = False  # the episode ended by completing its task (terminated rather than truncated)
    intro: str = "First-person Minecraft footage recorded by a human player."
    outcome: list[str] = field(default_factory=list)  # episode-level sentences (task outcome, total reward)


def detect_format(src: str | Path) -> str:
    """"minerl" or "vpt", from the files at `src`; StoreError when it holds neither."""
    p = Path(src)
    if p.is_file() and p.suffix in (".mp4", ".jsonl") and p.name != "recording.mp4":
        return "vpt"
    if p.is_dir() and next(p.rglob("rendered.npz"), None) is not None:
        return "minerl"
    if p.is_dir() and next(p.rglob("*.jsonl"), None) is not None:
        return "vpt"
    what = "does not exist" if not p.exists() else "holds no rendered.npz (MineRL) or .jsonl (VPT)"
    raise S.StoreError(f"src={src} {what}; give a MineRL trajectory folder or VPT recordings (or format=...)")


# -- MineRL v0.4 ---------------------------------------------------------------------------------------------
def find_minerl(src: str | Path) -> list[Path]:
    """Trajectory folders under `src` (one folder, or any tree of them), sorted."""
    root = Path(src)
    if not root.is_dir():
        raise S.StoreError(f"src={src} is not a directory (give a MineRL trajectory folder or a folder of them)")
    folders = sorted({p.parent for name in ("rendered.npz", "recording.mp4", "metadata.json")
                      for p in root.rglob(name)})
    if not folders:
        raise S.StoreError(f"no MineRL trajectory under {src} (folders with recording.mp4, rendered.npz and "
                           f"metadata.json)")
    return folders


def _read_minerl(folder: Path, allow_pickle: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata.json, the arrays of rendered.npz) of a trajectory folder, each file checked."""
    npz, video, meta_path = folder / "rendered.npz", folder / "recording.mp4", folder / "metadata.json"
    for p in (npz, video, meta_path):
        if not p.is_file():
            raise S.StoreError(f"{p} is missing (a MineRL trajectory folder holds recording.mp4, rendered.npz and "
                               f"metadata.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:  # UnicodeDecodeError included
        meta = None
    if not isinstance(meta, dict):
        raise S.StoreError(f"{meta_path} is not a JSON object")
    if not zipfile.is_zipfile(npz):
        raise S.StoreError(f"{npz} is not a readable .npz (not a zip archive)")
    try:
        with np.load(npz, allow_pickle=allow_pickle) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise S.StoreError(f"{npz} holds pickled Python objects; pass allow_pickle=true only if you trust "
                               f"the file") from None
        raise S.StoreError(f"{npz} is not a readable .npz ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise S.StoreError(f"{npz} is not a readable .npz ({err})") from None
    if "reward" not in data:
        raise S.StoreError(f"{npz} has no 'reward' array: not a MineRL v0.4 rendered.npz")
    return meta, data


def _minerl_actions(acts: dict[str, np.ndarray], n: int, npz: Path) -> np.ndarray:
    """MineRL's `action$*` arrays (n rows each) -> our flat actions (n, A), checked."""
    if "vector" in acts:
        raise S.StoreError(f"{npz} is from an obfuscated (VectorObf) environment: its actions cannot be mapped")
    unknown = sorted(set(acts) - set(MINERL_KNOWN))
    if unknown:
        raise S.StoreError(f"{npz} has unknown action key(s) {unknown}; known: {list(MINERL_KNOWN)}")
    for k, v in acts.items():
        if v.shape[:1] != (n,) or (k == "camera" and v.shape != (n, 2)):
            raise S.StoreError(f"{npz}: action${k} has shape {v.shape}, expected {n} rows like 'reward'"
                               f"{' of 2 (pitch, yaw)' if k == 'camera' else ''}")
    flat = np.zeros((n, len(FLAT_KEYS)), np.float32)
    for k in MINERL_BUTTONS:
        if k in acts:
            flat[:, COL[k]] = _button(acts[k], f"{npz}: action${k}")
    if "place" in acts:  # placing the held block is a right click: the voxel world's `use`
        flat[:, COL["use"]] = np.maximum(flat[:, COL["use"]], _used(acts["place"]))
    cam = _number(acts.get("camera", np.zeros((n, 2))), f"{npz}: action$camera")
    flat[:, COL["camera_pitch"]], flat[:, COL["camera_yaw"]] = np.clip(cam, -180, 180).T  # same signs as ours
    for k in range(9, 0, -1):  # the lowest pressed number wins
        if f"hotbar.{k}" in acts:
            flat[_button(acts[f"hotbar.{k}"], f"{npz}: action$hotbar.{k}") != 0, COL["hotbar"]] = k
    return flat


def _minerl_events(acts: dict[str, np.ndarray], data: dict[str, np.ndarray], reward: np.ndarray
                   ) -> list[list[dict[str, Any]]]:
    """Per step: items crafted, placed, ... (string actions), rewards and inventory gains."""
    n = len(reward)
    events: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for key, kind in MINERL_ITEMS.items():
        for t in np.flatnonzero(_used(acts[key])) if key in acts else []:
            events[t].append({"type": kind, "item": str(acts[key][t])})
    for t in np.flatnonzero(reward):
        events[t].append({"type": "reward", "value": float(reward[t])})
    for k, v in sorted(data.items()):
        if k.startswith("observation$inventory$") and len(v) == n + 1:
            gain = np.diff(np.asarray(v, np.int64))  # state t -> t + 1: what step t brought
            for t in np.flatnonzero(gain > 0):
                events[t].append({"type": "inventory_gained", "item": k.rsplit("$", 1)[1], "count": int(gain[t])})
    return events


def parse_minerl(folder: Path, env: str | None = None, allow_pickle: bool = False) -> Recording:
    """Read and check one trajectory folder; map its actions. Raises StoreError naming the file and the problem."""
    npz, video, meta_path = folder / "rendered.npz", folder / "recording.mp4", folder / "metadata.json"
    meta, data = _read_minerl(folder, allow_pickle)
    reward = _number(data["reward"], f"{npz}: reward").reshape(-1).astype(np.float32)
    n = len(reward)
    if n < 1 or meta.get("duration_steps", n) != n:
        raise S.StoreError(f"{npz} has {n} reward rows but {meta_path.name} says duration_steps="
                           f"{meta.get('duration_steps')}")
    acts = {k[len("action$"):]: v for k, v in data.items() if k.startswith("action$")}
    flat = _minerl_actions(acts, n, npz)
    events = _minerl_events(acts, data, reward)
    name = env or (folder.parent.name if re.fullmatch(r"MineRL\w+-v\d+", folder.parent.name) else "unknown")
    success, task = bool(meta.get("success", False)), re.sub(r"^MineRL|-v\d+$", "", name)
    true_frames = meta.get("true_video_frame_count")
    if true_frames is not None and (not isinstance(true_frames, int) or true_frames < n + 1):
        raise S.StoreError(f"{meta_path}: true_video_frame_count={true_frames!r} is not a count of at least the "
                           f"{n + 1} states in {npz.name}")
    return Recording(
        name=str(meta.get("stream_name") or folder.name), env_id=f"minerl:{name}", video=video,
        files=[npz, video, meta_path], actions=flat, rewards=reward, events=events, rows=(n + 1, n + 1),
        skip=None if true_frames is None else true_frames - (n + 1), success=success,
        intro=f"First-person Minecraft footage of a human player{_task_phrase(task)}.",
        outcome=([f"It completes the {task} task."] if task != "unknown" else ["It completes its task."]) * success)


def _number(values: np.ndarray, where: str) -> np.ndarray:
    """`values` as float64; StoreError if they are not numbers, or not finite (a NaN reward is damage, not data)."""
    try:
        out = np.asarray(values).astype(np.float64)
    except (TypeError, ValueError):
        raise S.StoreError(f"{where} is not numeric (dtype {np.asarray(values).dtype})") from None
    bad = np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1)) if out.ndim else []
    if len(bad) or (out.ndim == 0 and not np.isfinite(out)):
        raise S.StoreError(f"{where} has non-finite values (first at row {bad[0] if len(bad) else 0})")
    return out


def _button(values: np.ndarray, where: str) -> np.ndarray:
    """A MineRL button column (0 released, 1 pressed) as float32; StoreError for any other value (7 or -1 are not
    presses: the file is damaged or not MineRL v0.4)."""
    out = _number(values, where)
    bad = np.flatnonzero((out != 0) & (out != 1))
    if len(bad):
        raise S.StoreError(f"{where} must hold 0 (released) or 1 (pressed); row {bad[0]} holds {out[bad[0]]:g}")
    return out.astype(np.float32)


def _used(values: np.ndarray) -> np.ndarray:
    """Rows of a MineRL string action ("none" when unused) that do something."""
    return ~np.isin(np.asarray(values).astype(str), ("none", "", "0"))


def _task_phrase(task: str) -> str:
    phrases = {"Treechop": " chopping trees", "Navigate": " walking to a goal", "NavigateExtreme": " walking to a goal",
               "NavigateDense": " walking to a goal", "NavigateExtremeDense": " walking to a goal",
               "ObtainDiamond": " on the way to a diamond", "ObtainIronPickaxe": " on the way to an iron pickaxe"}
    return phrases.get(task, f" in the MineRL {task} task" if task != "unknown" else "")


# -- OpenAI VPT ----------------------------------------------------------------------------------------------
def find_vpt(src: str | Path) -> list[Path]:
    """The .mp4 files of VPT recordings at `src` (an .mp4, its .jsonl, or a folder searched recursively), sorted."""
    p = Path(src)
    if p.is_file() and p.suffix in (".mp4", ".jsonl"):
        return [p.with_suffix(".mp4")]
    if not p.is_dir():
        raise S.StoreError(f"src={src} is neither a VPT .mp4/.jsonl file nor a folder of them")
    videos = sorted({q.with_suffix(".mp4") for q in [*p.rglob("*.mp4"), *p.rglob("*.jsonl")]})
    if not videos:
        raise S.StoreError(f"no VPT recordings under {src} (NAME.mp4 with NAME.jsonl)")
    return videos


def _vpt_step(line: str, where: str) -> tuple[set[str], list[int], list[int], float, float, bool, Any]:
    """One line of a VPT .jsonl: (keys held, mouse buttons held, newly pressed, dx, dy, GUI open, hotbar slot)."""
    try:
        step = json.loads(line)
        mouse, keyboard = step["mouse"] or {}, step["keyboard"] or {}
        keys = set(keyboard.get("keys") or [])
        buttons, new_buttons = list(mouse.get("buttons") or []), list(mouse.get("newButtons") or [])
        dx, dy = float(mouse.get("dx", 0.0)), float(mouse.get("dy", 0.0))
        assert np.isfinite(dx) and np.isfinite(dy), "mouse dx/dy must be finite numbers"
        return keys, buttons, new_buttons, dx, dy, bool(step.get("isGuiOpen", False)), step.get("hotbar")
    except json.JSONDecodeError as err:
        raise S.StoreError(f"{where}: not valid JSON ({err.msg})") from None
    except (KeyError, TypeError, AttributeError, ValueError, AssertionError) as err:
        raise S.StoreError(f"{where}: not a VPT action ({type(err).__name__}: {err}; needs mouse and "
                           f"keyboard objects)") from None


def parse_vpt(video: Path) -> Recording:
    """Read and check one VPT recording's action file; map its actions. Raises StoreError naming file and line."""
    jsonl = video.with_suffix(".jsonl")
    for p in (video, jsonl):
        if not p.is_file():
            raise S.StoreError(f"{p} is missing (a VPT recording is NAME.mp4 with NAME.jsonl)")
    try:
        lines = [ln for ln in jsonl.read_text().splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise S.StoreError(f"{jsonl} is not UTF-8 text") from None
    if not lines:
        raise S.StoreError(f"{jsonl} is empty")
    n = len(lines)
    flat = np.zeros((n, len(FLAT_KEYS)), np.float32)
    events: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    stuck, last_hotbar, selected, gui_before, keys_before = False, 0, 0, False, set()
    for t, line in enumerate(lines):
        keys, buttons, new_buttons, dx, dy, gui, hotbar = _vpt_step(line, f"{jsonl}:{t + 1}")
        # Some recordings start with attack held down until the player first presses it (VPT data_loader.py).
        stuck = (new_buttons == [0]) if t == 0 else (stuck and 0 not in new_buttons)
        if stuck:
            buttons = [b for b in buttons if b != 0]
        if gui != gui_before:
            events[max(t - 1, 0)].append({"type": "gui_opened" if gui else "gui_closed"})
        if "key.keyboard.q" in keys - keys_before:
            events[t].append({"type": "dropped"})
        gui_before, keys_before = gui, keys
        if gui:  # the game ignores movement, camera and clicks in the world while a screen is open
            continue
        for key, name in VPT_KEYS.items():
            if key in keys:
                flat[t, COL["hotbar"] if name.startswith("hotbar") else COL[name]] = \
                    int(name[7:]) if name.startswith("hotbar") else 1
        flat[t, COL["attack"]], flat[t, COL["use"]] = float(0 in buttons), float(1 in buttons)
        flat[t, COL["camera_pitch"]] = np.clip(dy * CAMERA_SCALER, -180, 180)  # mouse down = look down
        flat[t, COL["camera_yaw"]] = np.clip(dx * CAMERA_SCALER, -180, 180)  # mouse right = turn right
        if isinstance(hotbar, int) and hotbar != last_hotbar and 0 <= hotbar <= 8:  # also scroll-wheel changes
            flat[t, COL["hotbar"]] = flat[t, COL["hotbar"]] or hotbar + 1
        slot = int(flat[t, COL["hotbar"]])
        if slot:
            last_hotbar = slot - 1
            if slot != selected:
                events[t].append({"type": "hotbar_selected", "slot": slot})
            selected = slot
    version = video.parent.name if re.fullmatch(r"\d+(\.\d+)*", video.parent.name) else ""  # <version>/<name>
    return Recording(
        name=f"{version}/{video.stem}" if version else video.stem, env_id="vpt", video=video, files=[jsonl, video],
        actions=flat, rewards=np.zeros(n, np.float32),
        events=events, rows=(n, n + 1), strict_end=True,
        intro="First-person Minecraft footage recorded by a human player (OpenAI VPT contractor data).")


# -- captions ------------------------------------------------------------------------------------------------
def caption_play(actions: np.ndarray, events: list[dict[str, Any]], intro: str, seed: int,
                 extra: list[str] | None = None) -> tuple[str, str]:
    """(dense caption, short prompt) of recorded play from its flat actions (n, A) and events: only what the
    recording shows for sure (keys, camera, clicks, inventory, rewards), phrased from a seeded generator."""
    rng = np.random.default_rng(seed)
    a = np.asarray(actions, np.float32).reshape(-1, len(FLAT_KEYS))
    n = max(len(a), 1)
    frac = {k: float((a[:, COL[k]] != 0).sum()) / n for k in ("forward", "back", "left", "right", "sprint")}
    yaw, pitch = float(a[:, COL["camera_yaw"]].sum()), float(a[:, COL["camera_pitch"]].sum())
    turned = float(np.abs(a[:, COL["camera_yaw"]]).sum())
    presses = {k: int(np.sum(np.diff(np.concatenate([[0.0], a[:, COL[k]]])) > 0)) for k in ("jump", "attack", "use")}
    attack_s = float((a[:, COL["attack"]] != 0).sum()) / FPS
    doing, parts = [], []
    if frac["forward"] >= 0.5:
        sprint = frac["sprint"] >= 0.3
        parts.append(f"The player {'sprints' if sprint else _pick(rng, ['walks', 'moves'])} forward "
                     f"{_pick(rng, ['most of the time', 'for most of the clip'])}")
        doing.append("sprinting" if sprint else "walking forward")
    elif frac["forward"] >= 0.15:
        parts.append("The player walks forward now and then")
        doing.append("walking")
    elif frac["back"] >= 0.3:
        parts.append("The player backs up")
        doing.append("backing up")
    elif frac["left"] + frac["right"] >= 0.3:
        parts.append("The player steps sideways")
        doing.append("strafing")
    else:
        parts.append(_pick(rng, ["The player mostly stays in place", "The player hardly moves"]))
    if abs(yaw) >= 20:
        side = "right" if yaw > 0 else "left"
        parts.append(f"turning {side} about {int(round(abs(yaw) / 10) * 10)} degrees")
        doing.append(f"turning {side}")
    elif turned >= 90:
        parts.append("looking around")
        doing.append("looking around")
    sentences = [intro, ", ".join(parts) + "."]
    if abs(pitch) >= 15:
        sentences.append(f"It looks {'down' if pitch > 0 else 'up'}.")
    if presses["jump"]:
        sentences.append(f"It jumps{_times(presses['jump'])}.")
    if attack_s >= 0.25:
        sentences.append(f"It holds the attack button for about {max(1, round(attack_s))} "
                         f"{'second' if round(attack_s) <= 1 else 'seconds'}.")
        doing.append("attacking")
    if presses["use"]:
        sentences.append(f"It right-clicks to use an item{_times(presses['use'])}.")
    sentences += _play_events(events)
    sentences += extra or []
    short = ", ".join(["minecraft first-person play", *doing])
    return " ".join(sentences), short


def _times(k: int) -> str:
    return "" if k == 1 else f" {_n(k)} times"


def _play_events(events: list[dict[str, Any]]) -> list[str]:
    out = []
    gained: Counter = Counter()
    for e in events:
        if e["type"] == "inventory_gained":
            gained[e["item"].replace("_", " ")] += e["count"]
    if gained:
        out.append(f"Its inventory gains {_list([f'{_n(k)} {i}' for i, k in sorted(gained.items())])}.")
    for kind, verb in (("crafted", "crafts"), ("smelted", "smelts"), ("placed", "places"), ("equipped", "equips")):
        items = Counter(e["item"].replace("_", " ") for e in events if e["type"] == kind)
        if items:
            out.append(f"It {verb} {_list([i + _times(k) for i, k in sorted(items.items())])}.")
    reward = sum(e["value"] for e in events if e["type"] == "reward")
    if reward:
        out.append(f"It earns a reward of {reward:g}.")
    slots = [e["slot"] for e in events if e["type"] == "hotbar_selected"]
    if slots:
        out.append(f"It switches to hotbar slot {slots[-1]}.")
    if any(e["type"] == "gui_opened" for e in events):
        out.append("It opens an inventory or crafting screen.")
    if any(e["type"] == "dropped" for e in events):
        out.append("It drops an item.")
    return out


# -- writing -------------------------------------------------------------------------------------------------
def import_minerl(src_dir: str | Path, out_url: str, width: int | None = None, height: int | None = None,
                  env: str | None = None, segment_seconds: float = 2.0, licence: str | None = None,
                  allow_pickle: bool = False, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Import MineRL v0.4 trajectories (one folder or a tree of them) into a finalized store at `out_url`.

    Args:
        src_dir: a trajectory folder (recording.mp4, rendered.npz, metadata.json) or any folder holding them.
        out_url: the store (a path or an fsspec URL); an interrupted import resumes when run again.
        width, height: resize frames to this size (both or neither; default: the native 64x64).
        env: the MineRL environment name when the parent folder does not give it (e.g. MineRLTreechop-v0).
        segment_seconds: caption and quality segment length.
        licence: the licence line stored in the store (default: the MineRL data's terms, see LICENCES).
        allow_pickle: let numpy unpickle objects in rendered.npz (only for files you trust).
        progress: called with (episodes, frames) after each episode.

    Returns:
        The root attributes of the finished store.

    Raises:
        StoreError: a file is missing, corrupt or inconsistent (the message names it and the problem), or
            `out_url` holds something else.
        ValueError: bad settings (width/height, segment_seconds).
    """
    _check(width, height, segment_seconds)
    folders = find_minerl(src_dir)
    return _import("minerl", Path(src_dir), len(folders), lambda i: parse_minerl(folders[i], env, allow_pickle),
                   out_url, width, height, segment_seconds, licence, progress, env=env)


def import_vpt(src: str | Path, out_url: str, width: int | None = None, height: int | None = None,
               segment_seconds: float = 2.0, licence: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Import OpenAI VPT contractor recordings (NAME.mp4 + NAME.jsonl; a file or a folder searched recursively)
    into a finalized store at `out_url`. Arguments, result and errors as `import_minerl` (native size 640x360)."""
    _check(width, height, segment_seconds)
    videos = find_vpt(src)
    return _import("vpt", Path(src), len(videos), lambda i: parse_vpt(videos[i]), out_url, width, height,
                   segment_seconds, licence, progress)


def _check(width: int | None, height: int | None, segment_seconds: float) -> None:
    if (width is None) != (height is None) or any(v is not None and v <= 0 for v in (width, height)):
        raise ValueError(f"width and height must both be positive or both be left out, got {width}x{height}")
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")


def _import(fmt: str, src: Path, count: int, parse: Callable[[int], Recording], url: str, width: int | None,
            height: int | None, segment_seconds: float, licence: str | None,
            progress: Callable[[int, int], None] | None, **extra: Any) -> dict[str, Any]:
    # Parse and check every recording before writing anything (one at a time: only their summaries are kept).
    summary = [(r.name, r.env_id, r.files, len(r.actions)) for r in (parse(i) for i in range(count))]
    base = src if src.is_dir() else src.parent
    files = [[str(p.relative_to(base) if p.is_relative_to(base) else p), p.stat().st_size]
             for *_, paths, _ in summary for p in paths]
    job = {"importer": fmt, "src": str(src.resolve()), "recordings": [s[0] for s in summary], "width": width,
           "height": height, "segment_seconds": segment_seconds, "licence": licence or LICENCES[fmt], **extra,
           # the keys of an engine job that readers of `job` (worldsim info) expect, with what holds for a recording
           "policy": "human players (recorded)", "env_kwargs": {}, "seed": None, "steps": max(s[3] for s in summary)}
    key = hashlib.sha256(json.dumps({**job, "files": files}, sort_keys=True).encode()).hexdigest()[:16]
    with S.writer_lock(url):
        return _write(fmt, url, key, job, files, summary, count, parse, width, height, segment_seconds, progress)


def _write(fmt: str, url: str, key: str, job: dict[str, Any], files: list, summary: list, count: int,
           parse: Callable[[int], Recording], width: int | None, height: int | None, segment_seconds: float,
           progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """`_import` under the store's writer lock: stage the missing recordings, finalize, write the card."""
    from datagen.job import generator_info

    root = S.create_or_resume(url, key, job, lambda: {
        "generator": generator_info(), "env_ids": sorted({s[1] for s in summary}),
        "action_spec": json.loads(action_spec_json()), "fps": FPS, "licence": job["licence"], "alignment": ALIGNMENT,
        "source": {"format": fmt, "files": [f[0] for f in files]}})
    if not root.attrs.get("finalized"):
        done = S.staged_episodes(root)
        for i in range(count):
            if i in done:
                continue
            rec = parse(i)
            frames = _decode(rec, root, i, (width, height) if width else None)
            S.write_staged_episode(root, _episode(rec, i, frames, segment_seconds))
            if progress:
                progress(1, frames.shape[0])
        S.finalize(root, count)
    elif "staging" in root:  # killed after finalizing but before cleaning up
        del root["staging"]
    _write_card(root, url, fmt)
    return dict(root.attrs)


def _decode(rec: Recording, root: Any, index: int, size: tuple[int, int] | None) -> Any:
    """Decode the recording's frames (resized by ffmpeg when `size` is given) into a staged frames array."""
    import imageio_ffmpeg

    params = ["-vf", f"scale={size[0]}:{size[1]}:flags=area"] if size else []
    reader = imageio_ffmpeg.read_frames(str(rec.video), output_params=params)  # starts ffmpeg at the first next()
    log = logging.getLogger("imageio_ffmpeg")
    level, skip = log.level, rec.skip
    try:
        if skip is None:  # no true_video_frame_count: the states are the video's last frames
            skip = max(0, imageio_ffmpeg.count_frames_and_secs(str(rec.video))[0] - rec.rows[1])
        log.setLevel(logging.ERROR)  # resizing is what we asked for: no warning that the size differs
        try:
            w, h = next(reader)["size"]
        finally:
            log.setLevel(level)
        frames = S.stage_frames(root, index, rec.rows[1], h, w)
        block, buf, got, seen = frames.chunks[0], [], 0, 0
        for raw in reader:
            seen += 1
            if seen <= skip:
                continue
            if got + len(buf) == rec.rows[1]:
                if rec.strict_end:
                    raise S.StoreError(f"{rec.video} has more than {rec.rows[1]} frames for the {len(rec.actions)} "
                                       f"lines of {rec.files[0].name} (expected as many frames, or one more)")
                break
            buf.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
            if len(buf) == block or got + len(buf) == rec.rows[1]:
                frames[got : got + len(buf)] = np.stack(buf)
                got, buf = got + len(buf), []
        if buf:
            frames[got : got + len(buf)] = np.stack(buf)
            got += len(buf)
    except S.StoreError:
        raise
    except Exception as err:  # imageio-ffmpeg raises OSError/RuntimeError with ffmpeg's log for broken files
        raise S.StoreError(f"{rec.video} cannot be decoded ({str(err).strip().splitlines()[0]})") from None
    finally:
        reader.close()
    if got < max(rec.rows[0], 2):
        raise S.StoreError(f"{rec.video} has {seen} frames: too few for the {len(rec.actions)} steps in "
                           f"{rec.files[0].name} ({rec.rows[0]} needed{f' after {skip} loading frames' if skip else ''}"
                           f"; an episode needs at least 2)")
    if got < frames.shape[0]:
        frames.resize((got, h, w, 3))
    return frames


def _episode(rec: Recording, index: int, frames: Any, segment_seconds: float) -> S.Episode:
    rows = frames.shape[0]
    steps = rows - 1  # the final observation's row carries a no-op that was never executed
    actions = np.concatenate([rec.actions[:steps], np.zeros((1, len(FLAT_KEYS)), np.float32)])
    rewards = np.append(rec.rewards[:steps], 0.0).astype(np.float32)
    terminated, truncated = np.zeros(rows, bool), np.zeros(rows, bool)
    (terminated if rec.success and steps == len(rec.actions) else truncated)[steps - 1] = True
    step_events = [*rec.events[:steps], []]
    bounds = segment_bounds(rows, max(2, round(segment_seconds * FPS)))
    dense, short, quality = [], [], {k: [] for k in S.SEGMENT_QUALITY}
    for k, (a, b) in enumerate(bounds):
        events = [e for t in range(a, b) for e in step_events[t]]
        d, s = caption_play(actions[a : min(b, steps)], events, rec.intro, index * 1000 + k)
        dense.append(d)
        short.append(s)
        for key, v in segment_quality(np.asarray(frames[a:b]), len(events), d).items():
            quality[key].append(v)
    all_events = [{"step": t, **e} for t, ev in enumerate(step_events) for e in ev]
    ep_dense, ep_short = caption_play(actions[:steps], all_events, rec.intro, index * 1000 + 999, rec.outcome)
    return S.Episode(
        index=index, seed=int.from_bytes(hashlib.sha256(rec.name.encode()).digest()[:4], "big") & 0x7FFFFFFF,
        frames=frames, actions=actions, rewards=rewards, terminated=terminated, truncated=truncated,
        segments=bounds, segment_dense=dense, segment_short=short,
        quality={k: np.asarray(v, np.float32) for k, v in quality.items()}, episode_dense=ep_dense,
        episode_short=ep_short, events=all_events, policy=f"human player ({rec.env_id} recording {rec.name})")


def _write_card(root: Any, url: str, fmt: str) -> None:
    """DATASET.md beside the arrays: the source and its licence, the files imported, mapping, statistics."""
    import fsspec

    a, title = root.attrs, {"minerl": "MineRL v0.4 human demonstrations", "vpt": "OpenAI VPT contractor data"}[fmt]
    st, files = a["stats"], a["source"]["files"]
    lines = [
        f"# worldsim dataset imported from {title}", "",
        f"- episodes: {st['episodes']}, frames: {st['frames']}, resolutions: {', '.join(st['resolutions'])}, "
        f"fps: {a['fps']}, environments: {', '.join(a['env_ids'])}",
        f"- content digest (sha256 of all arrays and texts): `{a['digest']}`",
        f"- imported by worldsim {a['generator']['version']} (git {a['generator']['git_sha']}) "
        f"from `{a['job']['src']}`",
        f"- licence: {a['licence']}",
        f"- alignment: {a['alignment']}",
        "- actions: mapped to the voxel world's action spec (docs/dataset.md, 'Importing and exporting'); captions "
        "describe only the recorded inputs, rewards and inventory changes (no engine ground truth)", "",
        f"## Files imported ({len(files)})", "", *[f"- `{f}`" for f in files[:2000]],
        *([f"- ... and {len(files) - 2000} more"] if len(files) > 2000 else []), "",
        "## Action statistics (fraction of steps each key is non-zero; mean and std)", "",
        "| key | non-zero | mean | std |", "|---|---|---|---|",
        *[f"| {k} | {v['nonzero']} | {v['mean']} | {v['std']} |" for k, v in st["actions"].items()],
        "", "Schema: docs/dataset.md in the worldsim repository.", ""]
    with fsspec.open(url.rstrip("/") + "/DATASET.md", "w") as f:
        f.write("\n".join(lines))
