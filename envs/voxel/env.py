"""`worldsim/Voxel-v0`: a Minecraft-like first-person voxel world as a gymnasium env.

Observation: `uint8 (height, width, 3)` first-person image. Actions: MineRL-compatible (see `envs.voxel.actions`).
`info` carries ground truth every step (pose, camera intrinsics/extrinsics, biome, time of day, what is visible,
the targeted block, inventory, and the step's event log); depth and segmentation images when requested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import positive_int
from envs.voxel import actions as A
from envs.voxel.blocks import Block, block_name, materials_by_id
from envs.voxel.entities import Animal, step_animal
from envs.voxel.interaction import Interaction
from envs.voxel.player import Player, step_player
from envs.voxel.tasks import make_task
from envs.voxel.world import VoxelWorld
from envs.voxel.worldgen import BIOME_NAMES, SEA_LEVEL, Biome
from renderers import Camera, VoxelRenderer, sky_state
from renderers.voxel_renderer import ENTITY_SEG_OFFSET

ANIMAL_RADIUS = 40.0  # animals further than this from the player are not drawn
SIM_RADIUS = 24.0  # ... and further than this, frozen (too small to see move at 64 px; saves step time)
LEAVE_AFTER = 10  # steps out of sight before an animal counts as having left the view



class VoxelEnv(gym.Env):
    """A procedural voxel world (see module docstring and docs/voxel.md).

    Args:
        width, height: observation size in pixels (any aspect ratio).
        task: one of `explore`, `collect_wood`, `navigate`, `build` (see `envs.voxel.tasks`).
        max_episode_steps: truncation horizon (default: the task's).
        render_mode: None or "rgb_array".
        fov: vertical field of view in degrees.
        view_distance: chunks (16 blocks) drawn around the player; None picks by resolution (2 up to 96 px,
            3 up to 256 px, else 4): beyond that, blocks are smaller than a pixel and only cost render time.
        depth, segmentation: add `info["depth"]` (float32 metres, inf for sky) and `info["segmentation"]`
            (uint16: 0 sky, block id, or 256 + entity id) every step.
        day_length: steps per full day-night cycle.
        start_hours: time of day at reset in hours (None: drawn from [5, 20) by the reset seed).
        world_seed: fix the terrain across resets (None: every reset draws a new world from its seed).
        animals: spawn wandering animals.
        textured: procedural block textures (False: flat colours).
        goal_distance: (min, max) distance of the navigate goal.
        device_index: EGL device to render on.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        width: int = 64,
        height: int = 64,
        task: str = "explore",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        fov: float = 70.0,
        view_distance: int | None = None,
        depth: bool = False,
        segmentation: bool = False,
        day_length: int = 6000,
        start_hours: float | None = None,
        world_seed: int | None = None,
        animals: bool = True,
        textured: bool = True,
        goal_distance: tuple[float, float] = (12.0, 32.0),
        device_index: int = 0,
    ) -> None:
        self.width = positive_int("width", width)
        self.height = positive_int("height", height)
        if view_distance is None:
            side = max(self.width, self.height)
            view_distance = 2 if side <= 96 else (3 if side <= 256 else 4)
        self.view_distance = positive_int("view_distance", view_distance)
        self.day_length = positive_int("day_length", day_length)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 10.0 <= float(fov) <= 150.0:
            raise ValueError(f"fov must be in [10, 150] degrees, got {fov}")
        self.task = make_task(task, **({"goal_distance": tuple(goal_distance)} if task == "navigate" else {}))
        self.max_episode_steps = (
            self.task.default_max_steps if max_episode_steps is None
            else positive_int("max_episode_steps", max_episode_steps)
        )
        self.render_mode = render_mode
        self._intrinsics = Camera(fov_y=float(fov), width=self.width, height=self.height).intrinsics()
        self.fov = float(fov)
        self.want_depth, self.want_seg = bool(depth), bool(segmentation)
        self.start_hours = start_hours
        self.fixed_world_seed = world_seed
        self.animals_enabled = bool(animals)
        self.textured = bool(textured)
        self.device_index = int(device_index)

        self.observation_space = spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8)
        self.action_space = A.action_space()
        self._renderer: VoxelRenderer | None = None
        self.world: VoxelWorld | None = None
        self.player = Player()
        self.animals: list[Animal] = []
        self._frame = np.zeros((self.height, self.width, 3), dtype=np.uint8)

    # -- public helpers -------------------------------------------------------------------------------------
    @property
    def player_pos(self) -> np.ndarray:
        return self.player.pos

    def camera(self) -> Camera:
        p = self.player
        return Camera(p.eye(), p.yaw, p.pitch, self.fov, self.width, self.height, 0.05, 16.0 * (self.view_distance + 2))

    # -- gymnasium API --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        rng = self.np_random
        world_seed = options.get("world_seed", self.fixed_world_seed)
        self.world_seed = int(rng.integers(2**31)) if world_seed is None else int(world_seed)
        self.world = VoxelWorld(self.world_seed)
        hours = options.get("start_hours", self.start_hours)
        self.hours = float(rng.uniform(5.0, 20.0) if hours is None else hours) % 24.0
        self.t = 0
        self.player = Player(pos=self._spawn_point(rng), yaw=float(rng.uniform(-180, 180)))
        self.interaction = Interaction(self.task.start_inventory)
        self.animals, self._next_entity_id = [], 0
        self._visible_ids: set[int] = set()  # animals currently counted as in view
        self._last_seen: dict[int, int] = {}  # animal id -> last step it covered a pixel
        self._biome = None
        self._phase = sky_state(self.hours).phase
        if self._renderer is None:
            self._renderer = VoxelRenderer(self.width, self.height, materials_by_id(), self.textured,
                                           self.device_index)
        self._renderer.clear()
        self._center = None
        self._stream_chunks(force=True)
        self.task.reset(self)
        self._stream_chunks()  # re-mesh what the task changed (the navigate goal pillar)
        events: list[dict[str, Any]] = []
        self._observe(events)
        return self._frame.copy(), self._info(events)

    def step(self, action: Mapping[str, Any]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        keys, d_pitch, d_yaw, hotbar = A.parse(action)  # validate before changing anything
        p = self.player
        p.yaw = (p.yaw + d_yaw + 180.0) % 360.0 - 180.0
        p.pitch = float(np.clip(p.pitch + d_pitch, -90.0, 90.0))
        if hotbar:
            self.interaction.selected = hotbar - 1
        near = [a for a in self.animals if abs(a.pos[0] - p.pos[0]) < 4.0 and abs(a.pos[2] - p.pos[2]) < 4.0]
        animal_boxes = [a.box() for a in near]  # only animals within reach of this tick's move can collide
        events = step_player(p, self.world, keys, animal_boxes)
        events += self.interaction.act(self, keys["attack"], keys["use"])
        rng = self.np_random
        for a in self.animals:
            if abs(a.pos[0] - p.pos[0]) < SIM_RADIUS and abs(a.pos[2] - p.pos[2]) < SIM_RADIUS:
                step_animal(a, self.world, rng, p.box())
        self.t += 1
        self.hours = (self.hours + 24.0 / self.day_length) % 24.0
        phase = sky_state(self.hours).phase
        if phase != self._phase:
            events.append({"type": "time_changed", "from": self._phase, "to": phase})
            self._phase = phase
        self._stream_chunks()
        self._observe(events)
        reward, terminated = self.task.reward(self, events)
        if any(e["type"] == "died" for e in events):
            terminated = True
        truncated = not terminated and self.t >= self.max_episode_steps
        for e in events:
            e["step"] = self.t
        return self._frame.copy(), float(reward), bool(terminated), bool(truncated), self._info(events)

    @staticmethod
    def action_spec_json() -> str:
        """JSON that rebuilds the action space and names the flat vector's entries (stored with datasets)."""
        return A.action_spec_json()

    def render(self) -> np.ndarray | None:
        return self._frame.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None

    # -- internals ------------------------------------------------------------------------------------------
    def _spawn_point(self, rng: np.random.Generator) -> np.ndarray:
        """A dry column near a seed-chosen point; the player stands on it."""
        sx, sz = (int(v) for v in rng.integers(-48, 48, size=2))
        best = None
        for r in range(0, 64, 4):
            for dx, dz in ((r, 0), (-r, 0), (0, r), (0, -r), (r, r), (-r, -r), (r, -r), (-r, r)):
                x, z = sx + dx, sz + dz
                top = self.world.surface_y(x, z)
                if top >= SEA_LEVEL and self.world.get(x, top, z) not in (Block.WATER, Block.LEAVES,
                                                                             Block.SPRUCE_LEAVES):
                    best = (x, top, z)
                    break
            if best:
                break
        x, top, z = best or (sx, self.world.surface_y(sx, sz), sz)
        return np.array([x + 0.5, top + 1.0, z + 0.5])

    def _stream_chunks(self, force: bool = False) -> None:
        """Keep chunks generated within view distance + 1 and meshed within view distance of the player."""
        p = self.player.pos
        center = (math.floor(p[0]) >> 4, math.floor(p[2]) >> 4)
        world, r = self.world, self.view_distance
        if force or center != self._center:
            self._center = center
            ring = lambda n: {(center[0] + i, center[1] + j) for i in range(-n, n + 1) for j in range(-n, n + 1)}  # noqa: E731
            world.ensure(ring(r + 1))
            self._meshed = ring(r)
            for k in self._renderer.chunk_keys - self._meshed:
                self._renderer.remove_chunk(k)
            if world.unload(ring(r + 2)):  # animals of dropped chunks go too, or the list would grow forever
                self.animals = [a for a in self.animals
                                if (math.floor(a.pos[0]) >> 4, math.floor(a.pos[2]) >> 4) in world.chunks]
            for kind, x, z in world.new_animals:
                if self.animals_enabled:
                    top = world.surface_y(x, z)
                    self.animals.append(Animal(self._next_entity_id, kind, np.array([x + 0.5, top + 1.0, z + 0.5]),
                                               yaw=float(self.np_random.uniform(-180, 180))))
                    self._next_entity_id += 1
            world.new_animals.clear()
            todo = (self._meshed - self._renderer.chunk_keys) | (world.dirty & self._meshed)
        else:
            todo = world.dirty & self._meshed
        if todo:
            for key, (solid, fluid) in world.mesh(todo).items():
                self._renderer.set_chunk(key, solid, fluid)

    def _observe(self, events: list[dict[str, Any]]) -> None:
        """Render the frame and update what is visible (entity view events)."""
        p = self.player
        boxes = [b for a in self.animals if abs(a.pos[0] - p.pos[0]) < ANIMAL_RADIUS
                 and abs(a.pos[2] - p.pos[2]) < ANIMAL_RADIUS for b in a.cached_render_boxes()]
        if boxes:
            arr = np.array(boxes, dtype=np.float32)
            arr[:, 10] += ENTITY_SEG_OFFSET
        else:
            arr = np.zeros((0, 11), np.float32)
        self._renderer.set_boxes(arr)
        cam = self._cam = self.camera()
        out = self._renderer.render(cam, sky_state(self.hours), fog_distance=16.0 * self.view_distance - 2,
                                    underwater=p.eye_in_water, depth=self.want_depth, segmentation=True)
        self._frame, self._out = out.rgb, out
        counts = np.bincount(out.segmentation.ravel())
        self._counts = counts
        # Hysteresis keeps captions calm: an animal "appears" once it covers a few pixels and "leaves" only
        # after it has been out of sight for LEAVE_AFTER steps (not when a far one flickers for a frame).
        seen = {int(i) for i in np.flatnonzero(counts[ENTITY_SEG_OFFSET:])}
        by_id = {a.id: a for a in self.animals}
        min_pixels = max(2, int(0.001 * self.width * self.height))
        for i in sorted(seen):
            self._last_seen[i] = self.t
            if i not in self._visible_ids and counts[ENTITY_SEG_OFFSET + i] >= min_pixels and i in by_id:
                self._visible_ids.add(i)
                events.append({"type": "entity_appeared", "id": i, "kind": by_id[i].kind,
                               "distance": round(float(np.linalg.norm(by_id[i].pos - p.pos)), 2)})
        for i in sorted(self._visible_ids):
            if self.t - self._last_seen.get(i, -LEAVE_AFTER) >= LEAVE_AFTER:
                self._visible_ids.discard(i)
                events.append({"type": "entity_left_view", "id": i, "kind": by_id[i].kind if i in by_id else None})
        biome = self.world.biome(p.pos[0], p.pos[2])
        if biome != self._biome:
            if self._biome is not None:
                events.append({"type": "entered_biome", "biome": BIOME_NAMES[biome]})
            self._biome = biome

    def _visible_summary(self) -> dict[str, Any]:
        counts = self._counts
        total = float(self.width * self.height)
        blocks = {block_name(int(i)): round(float(counts[i]) / total, 4)
                  for i in np.flatnonzero(counts[1:ENTITY_SEG_OFFSET]) + 1}
        entities = [{"id": i, "kind": a.kind, "pixels": int(counts[ENTITY_SEG_OFFSET + i]),
                     "distance": round(float(np.linalg.norm(a.pos - self.player.pos)), 2),
                     "position": [round(float(v), 3) for v in a.pos]}
                    for a in self.animals if (i := a.id) in self._visible_ids and i < len(counts) - ENTITY_SEG_OFFSET]
        return {"sky": round(float(counts[0]) / total, 4), "blocks": dict(sorted(blocks.items(),
                key=lambda kv: -kv[1])), "entities": entities}

    def _info(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        p, cam = self.player, self._cam
        sky = sky_state(self.hours)
        info: dict[str, Any] = {
            "step": self.t,
            "pose": {"position": p.pos.copy(), "yaw": p.yaw, "pitch": p.pitch, "velocity": np.array(p.moved) * 20.0,
                     "on_ground": p.on_ground, "in_water": p.in_water, "sneaking": p.sneaking,
                     "sprinting": p.sprinting},
            "health": p.health,
            "camera": {"intrinsics": self._intrinsics.copy(), "extrinsics": cam.extrinsics(),
                       "position": cam.position.copy(), "fov_y": self.fov},
            "biome": BIOME_NAMES[self._biome or Biome.PLAINS],
            "time_of_day": round(self.hours, 4),
            "day_phase": sky.phase,
            "visible": self._visible_summary(),
            "target": self.interaction.target_info(self),
            "inventory": self.interaction.inventory_info(),
            "events": events,
            "task": self.task.info(self),
            "world_seed": self.world_seed,
        }
        if self.want_depth:
            info["depth"] = self._out.depth
        if self.want_seg:
            info["segmentation"] = self._out.segmentation
        return info

