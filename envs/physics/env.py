"""`worldsim/Physics-v0`: procedural rigid-body scenes (pybullet) with Kubric-style ground truth.

Observation: `uint8 (height, width, 3)`. Action: `Box(-1, 1)` driving a pusher puck and/or the camera (see
`PhysicsEnv` and docs/physics.md for units). Physics runs at `physics_hz` (default 240 Hz); one step is one frame
at `fps` (default 15), i.e. physics_hz / fps internal steps.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import positive_int
from envs.physics import scene as scenes
from envs.physics.events import EventDetector
from envs.physics.sim import SCENERY_IDS, Body, PhysicsSim, quat_to_matrix
from envs.physics.tasks import GOAL_RADIUS, make_task
from renderers import Camera
from renderers.mesh_renderer import Instance, Light, MeshRenderer
from renderers.meshes import box, capsule, cone, convex_hull, cylinder, sphere

CONTROLS = {"pusher": 2, "camera": 3, "both": 5}
MAX_PUSH_SPEED = 0.8  # m/s at action 1
MAX_PUSH_FORCE = 10.0  # N at action 1 (pusher_mode="force"): 2.5 m/s^2 on the 4 kg pusher
CONTACT_EVERY = 3  # sample contacts every 3rd internal step (80 Hz at 240 Hz): enough to catch every impact
# default rates at action 1: deg/s, deg/s, fraction of distance per second (`orbit_rate=` sets the first)
ORBIT_RATE, ELEVATION_RATE, ZOOM_RATE = 60.0, 30.0, 0.5



def _mesh_of(body: Body):
    d = body.dims
    if body.shape == "box":
        return box((d["hx"], d["hy"], d["hz"]))
    if body.shape == "sphere":
        return sphere(d["r"])
    if body.shape == "cylinder":
        return cylinder(d["r"], d["h"])
    if body.shape == "capsule":
        return capsule(d["r"], d["h"])
    if body.shape == "cone":
        return cone(d["r"], d["h"])
    return convex_hull(body.points)


def _model(pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, pos
    return m


class PhysicsEnv(gym.Env):
    """Procedural physics scenes.

    Args:
        width, height: image size (any aspect ratio).
        task: `observe`, `push_to_target` or `topple_tower`.
        num_objects: an int, or (min, max) drawn per episode (default 3-12).
        object_size: (min, max) half size of objects in metres.
        spawn: `drop`, `throw`, `tower`, `ramp`, or None (drawn per episode; the task may require one).
        scene: `table`, `floor` or `room` (None: drawn per episode).
        control: what the action drives: `pusher` (2 values: vx, vy), `camera` (3: orbit, elevation, zoom) or
            `both` (5: vx, vy, orbit, elevation, zoom).
        pusher_mode: `velocity` (action x 0.8 m/s) or `force` (action x 10 N).
        orbit_rate: degrees of azimuth per second at orbit 1 (default 60; the physics recipe orbits at 240, 16
            degrees a frame, so a look 96 degrees away and back fits a 14-frame window).
        fps: frames per second of the observation; physics_hz: internal steps per second (>= 240).
        depth, segmentation: add those images to `info`.
        renderer: `moderngl` (default) or `tiny` (pybullet's TinyRenderer, slower, for comparison).
        max_episode_steps: truncation horizon (default: the task's).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, width: int = 64, height: int = 64, task: str = "observe", num_objects: Any = (3, 12),
                 object_size: tuple[float, float] = (0.03, 0.08), spawn: str | None = None, scene: str | None = "table",
                 control: str = "pusher", pusher_mode: str = "velocity", fps: int = 15, physics_hz: int = 240,
                 depth: bool = False, segmentation: bool = False, renderer: str = "moderngl",
                 max_episode_steps: int | None = None, render_mode: str | None = None, fov: float = 50.0,
                 device_index: int = 0, orbit_rate: float = ORBIT_RATE) -> None:
        self.width = positive_int("width", width)
        self.height = positive_int("height", height)
        self.fps = positive_int("fps", fps)
        self.physics_hz = positive_int("physics_hz", physics_hz)
        if self.physics_hz < 240 or self.physics_hz % self.fps:
            raise ValueError(f"physics_hz must be >= 240 and a multiple of fps={self.fps}, got {physics_hz}")
        if control not in CONTROLS:
            raise ValueError(f"control must be one of {sorted(CONTROLS)}, got {control!r}")
        if pusher_mode not in ("velocity", "force"):
            raise ValueError(f"pusher_mode must be 'velocity' or 'force', got {pusher_mode!r}")
        if renderer not in ("moderngl", "tiny"):
            raise ValueError(f"renderer must be 'moderngl' or 'tiny', got {renderer!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = make_task(task)
        if not (math.isfinite(float(orbit_rate)) and 0.0 < float(orbit_rate) <= 720.0):
            raise ValueError(f"orbit_rate must be in (0, 720] degrees per second, got {orbit_rate!r}")
        self.orbit_rate = float(orbit_rate)
        if spawn is not None and spawn not in scenes.SPAWNS:
            raise ValueError(f"unknown spawn mode {spawn!r}; choose one of {scenes.SPAWNS} or None")
        if self.task.spawn and spawn not in (None, self.task.spawn):
            raise ValueError(f"task {task!r} needs spawn={self.task.spawn!r}, got spawn={spawn!r}")
        if scene is not None and scene not in scenes.KINDS:
            raise ValueError(f"unknown scene {scene!r}; choose one of {scenes.KINDS} or None")
        lo, hi = (num_objects, num_objects) if isinstance(num_objects, int | np.integer) else tuple(num_objects)
        if not 1 <= lo <= hi <= 16:
            raise ValueError(f"num_objects must be an int or (min, max) within [1, 16], got {num_objects!r}")
        # Validate sizes and fit now, with the largest scene, so a bad configuration fails at construction.
        scenes.sample_scene(np.random.default_rng(0), hi, spawn or "drop", scene or "table", tuple(object_size))
        self.num_objects, self.object_size = (int(lo), int(hi)), tuple(float(v) for v in object_size)
        self.spawn, self.scene_kind = spawn, scene
        self.control, self.pusher_mode, self.renderer_kind = control, pusher_mode, renderer
        self.want_depth, self.want_seg = bool(depth), bool(segmentation)
        self.render_mode, self.fov = render_mode, float(fov)
        self.max_episode_steps = (self.task.default_max_steps if max_episode_steps is None
                                  else positive_int("max_episode_steps", max_episode_steps))
        self.device_index = int(device_index)
        self.observation_space = spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (CONTROLS[control],), dtype=np.float32)
        self.sim = PhysicsSim(self.physics_hz, tiny_visuals=renderer == "tiny")
        self.sim.sample_dt = CONTACT_EVERY / self.physics_hz
        self._renderer: MeshRenderer | None = None
        self.scene: scenes.SceneSpec | None = None
        self._frame = np.zeros((self.height, self.width, 3), np.uint8)

    # -- gymnasium API --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        rng = self.np_random
        if options.get("scene") is not None:  # a constructed scene (tests, curated data)
            if not isinstance(options["scene"], scenes.SceneSpec):
                raise ValueError(f"options['scene'] must be a SceneSpec (envs.physics.scene), got "
                                 f"{type(options['scene']).__name__}")
            self.scene = copy.deepcopy(options["scene"])
        else:
            n = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
            spawn = self.task.spawn or self.spawn or str(rng.choice(scenes.SPAWNS))
            kind = self.scene_kind or str(rng.choice(scenes.KINDS))
            self.scene = scenes.sample_scene(rng, n, spawn, kind, self.object_size)
        unknown = set(options.get("camera", {})) - set(self.scene.camera)
        if unknown:
            raise ValueError(f"unknown camera option(s) {sorted(unknown)}; valid: {sorted(self.scene.camera)}")
        self.scene.camera.update(options.get("camera", {}))
        self.sim.build(self.scene)
        self.cam = dict(self.scene.camera)
        self.light = Light(direction=tuple(self.scene.light["direction"]), strength=self.scene.light["strength"],
                           ambient=self.scene.light["ambient"])
        self._setup_renderer()
        self.t = 0
        self.names = {b.seg: b.name for b in self.sim.bodies}
        self.detector = EventDetector(self.scene, self.names)
        for _ in range(4):  # let resting contacts register, so touching at spawn is not reported as a collision
            self.detector.contacts(self.sim.step(), report=False)
        self._read_state()
        self.task.reset(self)
        self._goal_instance()
        self._render()
        self.detector.frame(self.object_pos, self.object_rot, self.object_lin, self.object_ang, self._pixels)
        return self._frame.copy(), self._info([])

    def step(self, action):
        if self.scene is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape} for control={self.control!r}, "
                             f"got {a.shape}")
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            raise ValueError(f"action values must be finite and within [-1, 1], got {a.tolist()}")
        push = a[:2] if self.control in ("pusher", "both") else np.zeros(2)
        cam = a[2:5] if self.control == "both" else (a[:3] if self.control == "camera" else np.zeros(3))
        self._move_camera(cam)
        substeps = self.physics_hz // self.fps
        velocity = push * MAX_PUSH_SPEED if self.pusher_mode == "velocity" else None
        self.sim.drive_pusher(velocity, None if velocity is not None else push * MAX_PUSH_FORCE)
        for k in range(substeps):
            if velocity is None and k:
                self.sim.drive_pusher(None, push * MAX_PUSH_FORCE)
            sampled = k % CONTACT_EVERY == CONTACT_EVERY - 1
            sample = self.sim.step(contacts=sampled)
            if sampled:
                self.detector.contacts(sample)
        self.t += 1
        self._read_state()
        self._render()
        events = self.detector.frame(self.object_pos, self.object_rot, self.object_lin, self.object_ang, self._pixels)
        reward, terminated = self.task.reward(self, events)
        truncated = not terminated and self.t >= self.max_episode_steps
        for e in events:
            e["step"] = self.t
        return self._frame.copy(), float(reward), bool(terminated), bool(truncated), self._info(events)

    def action_spec_json(self) -> str:
        """JSON that rebuilds the action space and names its entries and units (stored with datasets)."""
        keys = {"pusher": ["push_x", "push_y"], "camera": ["orbit", "elevation", "zoom"],
                "both": ["push_x", "push_y", "orbit", "elevation", "zoom"]}[self.control]
        return json.dumps({"type": "Box", "low": -1.0, "high": 1.0, "shape": [len(keys)], "flat_keys": keys,
                           "units": {"push": f"{MAX_PUSH_SPEED} m/s" if self.pusher_mode == "velocity"
                                     else f"{MAX_PUSH_FORCE} N", "orbit": f"{self.orbit_rate} deg/s",
                                     "elevation": f"{ELEVATION_RATE} deg/s", "zoom": f"{ZOOM_RATE} x distance/s"}})

    def render(self):
        return self._frame.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None
        self.sim.close()

    # -- internals ------------------------------------------------------------------------------------------
    def camera(self) -> Camera:
        c = self.cam
        az, el = math.radians(c["azimuth"]), math.radians(c["elevation"])
        target = np.array([c["target_x"], c["target_y"], c["target_z"]])
        direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        eye = target + c["distance"] * direction
        return Camera.look_at(eye, target, width=self.width, height=self.height, fov_y=self.fov, near=0.02, far=20.0)

    def _move_camera(self, cam: np.ndarray) -> None:
        dt = 1.0 / self.fps
        c = self.cam
        c["azimuth"] = (c["azimuth"] + cam[0] * self.orbit_rate * dt) % 360.0
        c["elevation"] = float(np.clip(c["elevation"] + cam[1] * ELEVATION_RATE * dt, 5.0, 85.0))
        c["distance"] = float(np.clip(c["distance"] * (1.0 + cam[2] * ZOOM_RATE * dt), 0.5, 5.0))

    def _setup_renderer(self) -> None:
        if self.renderer_kind == "tiny":
            return
        if self._renderer is None:
            self._renderer = MeshRenderer(self.width, self.height, self.device_index)
        r = self._renderer
        r.clear_meshes()
        self._static, self._dynamic = [], []  # dynamic: (body, instance, row in object_states or None: pusher)
        row = {b.seg: i for i, b in enumerate(self.sim.objects)}
        for b in self.sim.bodies:
            mesh = r.add_mesh(_mesh_of(b))
            inst = Instance(mesh, np.eye(4), b.colour, b.seg, b.specular, b.checker)
            if b.static_pose is not None:
                inst.model = _model(b.static_pose[0], quat_to_matrix(b.static_pose[1]))
                self._static.append(inst)
            else:
                self._dynamic.append((b, inst, row.get(b.seg)))
        self._disc = r.add_mesh(cylinder(GOAL_RADIUS, 0.002, 24))
        r.set_static(self._static)

    def _goal_instance(self) -> None:
        self._extra = []
        if self.task.name == "push_to_target" and self._renderer is not None:
            g = self.task.goal
            self._extra.append(Instance(self._disc, _model(np.array([g[0], g[1], 0.0012]), np.eye(3)),
                                        (0.2, 0.85, 0.3), SCENERY_IDS["goal"]))
            self._renderer.set_static(self._static + self._extra)

    def _read_state(self) -> None:
        self.object_pos, self.object_quat, self.object_lin, self.object_ang = self.sim.object_states()
        self.object_rot = quat_to_matrix(self.object_quat)  # (N, 3, 3), shared by rendering and events

    def _render(self) -> None:
        cam = self._cam = self.camera()
        if self.renderer_kind == "tiny":
            out = self._render_tiny(cam)
        else:
            for b, inst, i in self._dynamic:
                if i is not None:
                    inst.model = _model(self.object_pos[i], self.object_rot[i])
                else:
                    p, q = self.sim.pose(b)
                    inst.model = _model(p, quat_to_matrix(q))
            out = self._renderer.render(cam, [inst for _, inst, _ in self._dynamic], self.light,
                                        depth=self.want_depth, segmentation=True)
        self._frame, self._out = out.rgb, out
        counts = np.bincount(out.segmentation.ravel(), minlength=len(self.scene.objects) + 1)
        self._pixels = counts[1 : len(self.scene.objects) + 1]

    def _render_tiny(self, cam: Camera):
        import pybullet as pb

        from renderers.target import RenderOutput

        w, h, rgba, depth, seg = self.sim.client.getCameraImage(
            self.width, self.height, viewMatrix=cam.view_matrix().T.reshape(-1).tolist(),
            projectionMatrix=cam.projection_matrix().T.reshape(-1).tolist(), renderer=pb.ER_TINY_RENDERER,
            lightDirection=list(self.light.direction), shadow=0)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3].copy()
        uid = np.asarray(seg, dtype=np.int64).reshape(h, w) & ((1 << 24) - 1)
        lut = np.zeros(max(self.sim.by_uid) + 2, dtype=np.uint16)
        for u, b in self.sim.by_uid.items():
            lut[u] = b.seg
        seg_img = np.where(np.asarray(seg).reshape(h, w) < 0, 0, lut[np.clip(uid, 0, len(lut) - 1)]).astype(np.uint16)
        d = cam.linearize_depth(np.asarray(depth, dtype=np.float32).reshape(h, w)) if self.want_depth else None
        return RenderOutput(rgb, d, seg_img)

    def _info(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        cam = self._cam
        objects = []
        for i, o in enumerate(self.scene.objects):
            objects.append({
                "id": o.id, "name": o.name, "shape": o.shape, "colour": o.colour, "material": o.material,
                "size": o.size, "dims": dict(o.dims), "mass": round(o.mass, 5),
                "position": self.object_pos[i].copy(), "orientation": self.object_quat[i].copy(),
                "linear_velocity": self.object_lin[i].copy(), "angular_velocity": self.object_ang[i].copy(),
                "visible": bool(self._pixels[i] > 0), "pixels": int(self._pixels[i]),
                "fell_off_table": bool(self.detector.fallen[i]),
            })
        pusher_pos, _ = self.sim.pose(self.sim.pusher)
        info: dict[str, Any] = {
            "step": self.t,
            "objects": objects,
            "pusher": {"position": np.asarray(pusher_pos, dtype=np.float64)},
            "camera": {"intrinsics": cam.intrinsics(), "extrinsics": cam.extrinsics(), "position": cam.position.copy(),
                       "azimuth": self.cam["azimuth"], "elevation": self.cam["elevation"],
                       "distance": self.cam["distance"], "fov_y": self.fov},
            "scene": {"kind": self.scene.kind, "spawn": self.scene.spawn, "num_objects": len(self.scene.objects),
                      "light_direction": list(self.light.direction)},
            "events": events,
            "task": self.task.info(self),
        }
        if self.want_depth:
            info["depth"] = self._out.depth
        if self.want_seg:
            info["segmentation"] = self._out.segmentation
        return info
