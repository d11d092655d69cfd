"""Scripted engine episodes with ground truth, for probing what a world model simulates (`worldsim probe`).

    ep = voxel_probe("revisit", seed=3, width=64, height=64)
    ep = physics_probe("drop", seed=3, control="both", orbit_rate=240.0)
    ep["frames"]   # (N + 1, H, W, 3) uint8, the engine's frames
    ep["actions"]  # (N, 12) float32 flat voxel actions, stored-aligned: actions[t] leads from frame t to t + 1
    ep["marks"]    # frame indices of the moments the probe scores, e.g. {"start": 13, "leave": 16, "far": 22, ...}

Every probe starts with `warmup` steps of the explorer policy (walking, steering, looking around: the context the
world model is given, ending at frame `marks["start"]`), then stands still for a few steps and follows a script:

- `revisit`: turn 180 degrees of yaw in 6 steps and back in 6 (marks leave, far, back). Standing still, the engine's
  view on return is the view it left: a model with memory must draw it again.
- `interaction`: look down at the ground in front (pitch +30 degrees twice), hold `attack` until the block breaks
  (at most 8 steps), then turn 180 degrees away and back (marks before: the intact block, broken: just after the
  break, far, back). The hole is still there in the engine's return frame; is it in the model's?

The engine runs without animals, so what changes between frames is the probe's doing. Each episode records whether
its script did what it meant (`ok`: a block in reach was broken; the player stood still and faces on return the way
it left, not falling or drifting in water), so a scorer can skip the ones that did not.

Physics probes (`physics_probe`, a tabletop scene of `worldsim/Physics-v0`; the episode also keeps the engine's
segmentation of every frame, `ep["segmentation"]`, the objects' colours and the puck's label, `ep["pusher_label"]`,
for scoring where things end up):

- `orbit` (needs a camera action): objects dropped onto the table settle for SETTLE_PHYSICS still steps, then the
  camera orbits 6 steps at full rate one way and 6 back (marks leave, far, back): 3D consistency along the path
  (the scene is still: only the view moves) and the view it left on return. `ok`: nothing moved more than 1 cm
  during the orbit.
- `drop`: objects released above the table, nothing driven; the context is the first DROP_CONTEXT frames, mid-fall
  (marks start, end = start + 15): where do the objects land? `ok`: some object moved on screen.
- `push` (needs the pusher): the puck starts 0.1-0.2 m (edge to edge) outside one object, the scene settles, then
  the puck drives straight at the object (2 steps in the context, 5 more after it), then stops (marks start,
  end = start + 10): where does the pushed object end up? `ok`: the object moved.
- `colour` (text control, `colour_scene`): a settled scene of three objects all of one named colour, its prompt in
  the captions' grammar ("On a table top lie a red rubber sphere, a red wood cube and a red metal cone.") and the
  engine's frames with every pixel labelled by the colour of what it shows (0: table, floor, puck, sky; i + 1:
  an object of colour_names()[i]): does a text-to-video sample of the prompt show the colour it names?
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers worldsim/Voxel-v0)
from datagen.policies import ExplorerPolicy
from envs.physics.sim import SCENERY_IDS
from envs.voxel.actions import noop, to_flat

KINDS = ("revisit", "interaction")  # the voxel engine's
PHYSICS_KINDS = ("orbit", "drop", "push", "colour")
# what each physics probe needs the action to drive (the env's `control`: pusher, camera or both)
PHYSICS_NEEDS = {"orbit": ("camera", "both"), "drop": ("pusher", "camera", "both"), "push": ("pusher", "both"),
                 "colour": ("pusher", "camera", "both")}
SETTLE_PHYSICS = 20  # still steps before the orbit and the push: dropped objects come to rest
DROP_CONTEXT = 2  # real frames of a drop the model is given (the reset frame and one step, objects still falling)
PUSH_LEAD, PUSH_DRIVE, PUSH_COAST = 2, 5, 5  # push steps in the context, after it, then still steps
SETTLE = 3  # still steps after the warm-up: the player stops
TURN = (30.0, 6)  # degrees of yaw per step, steps each way: 180 degrees away and back


def _act(camera: tuple[float, float] = (0.0, 0.0), **keys: int) -> dict[str, Any]:
    a = noop()
    a.update(keys)
    a["camera"] = np.array(camera, np.float32)
    return a


def voxel_probe(kind: str, seed: int, width: int = 64, height: int = 64, warmup: int = 13) -> dict[str, Any]:
    """One scripted probe episode of the voxel engine (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown voxel probe {kind!r}; choose one of {list(KINDS)}")
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 step, got {warmup}")
    rng = np.random.default_rng([seed, 0x9B0BE])
    env = gym.make("worldsim/Voxel-v0", width=width, height=height, task="explore", animals=False,
                   start_hours=float(rng.uniform(8.0, 16.0)), max_episode_steps=None)
    frames, actions, marks = [], [], {}
    try:
        obs, info = env.reset(seed=int(seed))
        frames.append(obs)

        def step(a: dict[str, Any]) -> dict[str, Any]:
            o, _, _, _, inf = env.step(a)
            actions.append(to_flat(a))
            frames.append(o)
            return inf

        policy = ExplorerPolicy(rng)
        for _ in range(warmup):
            info = step(policy.act(info))
        marks["start"] = len(frames) - 1
        for _ in range(SETTLE):
            info = step(_act())
        ok = True
        if kind == "interaction":
            for _ in range(2):
                info = step(_act((30.0, 0.0)))
            marks["before"] = len(frames) - 1
            ok = info["target"]["kind"] == "block"
            broke = False
            for _ in range(8 if ok else 0):
                info = step(_act(attack=1))
                if any(e["type"] == "block_broken" for e in info["events"]):
                    broke = True
                    break
            ok = ok and broke
            marks["broken"] = len(frames) - 1
            info = step(_act())  # let go of attack: the next block is not started
        yaw, n = TURN
        sign = 1.0 if rng.random() < 0.5 else -1.0
        marks["leave"] = len(frames) - 1
        left = info["pose"]
        for _ in range(n):
            info = step(_act((0.0, sign * yaw)))
        marks["far"] = len(frames) - 1
        for _ in range(n):
            info = step(_act((0.0, -sign * yaw)))
        marks["back"] = len(frames) - 1
        # a revisit only when the player stood still (not falling, sliding or swimming) and faces the same way
        moved = float(np.linalg.norm(np.asarray(info["pose"]["position"]) - np.asarray(left["position"])))
        turned = abs((float(info["pose"]["yaw"]) - float(left["yaw"]) + 180.0) % 360.0 - 180.0)
        ok = ok and moved < 0.05 and turned < 1.0
    finally:
        env.close()
    return {"kind": kind, "seed": int(seed), "frames": np.stack(frames), "actions": np.stack(actions),
            "marks": marks, "ok": bool(ok), "engine": "worldsim/Voxel-v0", "size": [height, width]}


def _physics_action(control: str, push: tuple[float, float] = (0.0, 0.0), orbit: float = 0.0) -> np.ndarray:
    if control == "pusher":
        return np.array(push, np.float32)
    if control == "camera":
        return np.array([orbit, 0.0, 0.0], np.float32)
    return np.array([*push, orbit, 0.0, 0.0], np.float32)


def _push_scene(rng: np.random.Generator, num_objects: int, object_size: tuple[float, float]):
    """A tabletop scene of dropped objects with the puck placed 0.1-0.2 m (edge to edge) outside one of them (towards
    the table's edge, so it pushes the object inwards), clear of the others; and that object's id. None when no
    object has room."""
    from envs.physics import scene as scenes
    from envs.physics.sim import PUSHER_RADIUS

    spec = scenes.sample_scene(rng, num_objects, "drop", "table", object_size)
    half = np.array(spec.area) - PUSHER_RADIUS - 0.02
    for j in rng.permutation(len(spec.objects)):
        o = spec.objects[int(j)]
        xy = np.asarray(o.position[:2], np.float64)
        out = xy / (np.linalg.norm(xy) + 1e-9) if np.linalg.norm(xy) > 0.05 else np.array([1.0, 0.0])
        spot = np.clip(xy + out * (o.size + PUSHER_RADIUS + rng.uniform(0.1, 0.2)), -half, half)
        if np.linalg.norm(spot - xy) < o.size + PUSHER_RADIUS + 0.05:
            continue  # clipped against the edge too close to the object
        if all(np.linalg.norm(spot - np.asarray(p.position[:2])) > p.size * 1.5 + PUSHER_RADIUS + 0.03
               for p in spec.objects if p is not o):
            spec.pusher_start = np.array([spot[0], spot[1], spec.pusher_start[2]])
            return spec, o.id
    return None


def physics_probe(kind: str, seed: int, width: int = 64, height: int = 64, control: str = "both",
                  orbit_rate: float = 60.0, fps: int = 15, num_objects: tuple[int, int] = (3, 8),
                  object_size: tuple[float, float] = (0.03, 0.08)) -> dict[str, Any]:
    """One scripted probe episode of the physics engine (see the module docstring). `control`, `orbit_rate` and
    `fps` must be those of the world model's training data (its actions mean what they meant there)."""
    if kind not in PHYSICS_KINDS or kind == "colour":
        raise ValueError(f"unknown physics probe episode {kind!r}; choose one of {list(PHYSICS_KINDS[:3])} (the "
                         "colour probe is scenes: colour_scene)")
    if control not in PHYSICS_NEEDS[kind]:
        raise ValueError(f"the {kind} probe needs a model whose action drives {' or '.join(PHYSICS_NEEDS[kind])}, "
                         f"not control={control!r}")
    rng = np.random.default_rng([seed, 0x9F1C5])
    env = gym.make("worldsim/Physics-v0", width=width, height=height, task="observe", control=control,
                   scene="table", spawn="drop", num_objects=num_objects, object_size=object_size, fps=fps,
                   orbit_rate=orbit_rate, segmentation=True, max_episode_steps=10_000).unwrapped
    frames, segs, actions, marks = [], [], [], {}
    target = None
    try:
        options = None
        if kind == "push":
            for _ in range(8):
                placed = _push_scene(rng, int(rng.integers(num_objects[0], num_objects[1] + 1)), object_size)
                if placed is not None:
                    break
            if placed is not None:
                options = {"scene": placed[0]}
                target = placed[1]
        obs, info = env.reset(seed=int(seed), options=options)
        frames.append(obs)
        segs.append(info["segmentation"])

        def step(a: np.ndarray) -> dict[str, Any]:
            o, _, _, _, inf = env.step(a)
            actions.append(a)
            frames.append(o)
            segs.append(inf["segmentation"])
            return inf

        still = _physics_action(control)
        ok = True
        if kind == "drop":
            for _ in range(DROP_CONTEXT - 1):
                info = step(still)
            marks["start"] = len(frames) - 1
            for _ in range(15):
                info = step(still)
            marks["end"] = len(frames) - 1
        elif kind == "orbit":
            for _ in range(SETTLE_PHYSICS):
                info = step(still)
            marks["leave"] = len(frames) - 1
            before = np.array([o["position"] for o in info["objects"]])
            sign = 1.0 if rng.random() < 0.5 else -1.0
            for _ in range(6):
                info = step(_physics_action(control, orbit=sign))
            marks["far"] = len(frames) - 1
            for _ in range(6):
                info = step(_physics_action(control, orbit=-sign))
            marks["back"] = len(frames) - 1
            after = np.array([o["position"] for o in info["objects"]])
            ok = float(np.abs(after - before).max()) < 0.01  # a still scene (1 cm: half a pixel): only the view moved
        else:
            ok = target is not None
            for _ in range(SETTLE_PHYSICS):
                info = step(still)
            if ok:
                obj = next(o for o in info["objects"] if o["id"] == target)
                d = np.asarray(obj["position"][:2]) - np.asarray(info["pusher"]["position"][:2])
                push = tuple(float(v) for v in d / (np.linalg.norm(d) + 1e-9))
            else:
                push = (0.0, 0.0)
            start_pos = None
            for i in range(PUSH_LEAD + PUSH_DRIVE + PUSH_COAST):
                if i == PUSH_LEAD:
                    marks["start"] = len(frames) - 1
                    start_pos = next((np.asarray(o["position"]) for o in info["objects"] if o["id"] == target), None)
                info = step(_physics_action(control, push=push if i < PUSH_LEAD + PUSH_DRIVE else (0.0, 0.0)))
            marks["end"] = len(frames) - 1
            end_pos = next((np.asarray(o["position"]) for o in info["objects"] if o["id"] == target), None)
            ok = ok and start_pos is not None and float(np.linalg.norm(end_pos[:2] - start_pos[:2])) > 0.02
        objects = [{"id": o["id"], "name": o["name"], "colour": o["colour"]} for o in info["objects"]]
    finally:
        env.close()
    seg = np.stack(segs)
    if kind == "drop":  # some object's pixels moved between the last real frame and the end
        ok = any(_moved(seg[marks["start"]], seg[marks["end"]], o["id"]) for o in objects)
    return {"kind": kind, "seed": int(seed), "frames": np.stack(frames), "actions": np.stack(actions),
            "segmentation": seg, "objects": objects, "target": target, "pusher_label": SCENERY_IDS["pusher"],
            "marks": marks, "ok": bool(ok),
            "engine": "worldsim/Physics-v0", "size": [height, width], "control": control}


def _moved(a: np.ndarray, b: np.ndarray, label: int, pixels: float = 1.5) -> bool:
    """Whether the segment `label` is visible in both masks with centroids more than `pixels` apart."""
    ya, xa = np.nonzero(a == label)
    yb, xb = np.nonzero(b == label)
    if len(ya) < 2 or len(yb) < 2:
        return False
    return float(np.hypot(ya.mean() - yb.mean(), xa.mean() - xb.mean())) > pixels


def colour_names() -> list[str]:
    """The object colours the physics engine draws and its captions name, in a fixed order."""
    from envs.physics.scene import COLOURS

    return list(COLOURS)


def colour_scene(colour: str, seed: int, width: int = 64, height: int = 64, control: str = "both",
                 orbit_rate: float = 60.0, fps: int = 15, settle: int = 10) -> dict[str, Any]:
    """Three objects of `colour` dropped onto the table and settled (see the module docstring): the prompt, the
    engine's last 4 frames and their colour labels (T, H, W) int."""
    from envs.physics.scene import sample_scene

    names = colour_names()
    if colour not in names:
        raise ValueError(f"unknown colour {colour!r}; choose one of {names}")
    rng = np.random.default_rng([seed, names.index(colour), 0xC0105])
    spec = sample_scene(rng, 3, "drop", "table", (0.05, 0.08))
    for o in spec.objects:
        o.colour = colour
    env = gym.make("worldsim/Physics-v0", width=width, height=height, task="observe", control=control,
                   scene="table", fps=fps, orbit_rate=orbit_rate, segmentation=True,
                   max_episode_steps=10_000).unwrapped
    frames, labels = [], []
    try:
        _, info = env.reset(seed=int(seed), options={"scene": spec})
        for t in range(settle + 4):
            obs, _, _, _, info = env.step(_physics_action(control))
            if t >= settle:
                frames.append(obs)
                lab = np.zeros(info["segmentation"].shape, np.int64)
                for o in info["objects"]:
                    lab[info["segmentation"] == o["id"]] = names.index(o["colour"]) + 1
                labels.append(lab)
    finally:
        env.close()
    listed = [f"a {n}" for n in (o["name"] for o in info["objects"])]
    prompt = f"On a table top lie {', '.join(listed[:-1])} and {listed[-1]}."
    return {"colour": colour, "prompt": prompt, "frames": np.stack(frames), "labels": np.stack(labels),
            "visible": int((labels[-1] > 0).sum())}
