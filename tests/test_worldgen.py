"""Procedural world generation: biomes, block variety, order independence, events of animals."""

from __future__ import annotations

import numpy as np
from voxel_helpers import act, flat_arena

from envs.voxel.blocks import Block
from envs.voxel.entities import Animal
from envs.voxel.world import VoxelWorld
from envs.voxel.worldgen import HEIGHT, Biome, generate_region


def test_a_large_region_has_every_biome_and_many_block_types():
    seen_biomes, seen_blocks = set(), set()
    for seed in (0, 1):
        r = generate_region(seed, -320, -320, 640, 640)
        seen_biomes |= set(np.unique(r.biome).tolist())
        seen_blocks |= set(np.unique(r.blocks).tolist())
    assert {Biome.PLAINS, Biome.FOREST, Biome.DESERT, Biome.SNOW, Biome.MOUNTAINS, Biome.WATER} <= seen_biomes
    wanted = {Block.GRASS, Block.DIRT, Block.STONE, Block.SAND, Block.GRAVEL, Block.WATER, Block.LOG,
              Block.LEAVES, Block.SNOW, Block.COAL_ORE, Block.IRON_ORE, Block.BEDROCK}
    assert wanted <= seen_blocks
    assert len(seen_blocks) >= 14


def test_chunks_do_not_depend_on_generation_order():
    whole = generate_region(5, -16, -16, 48, 48)
    alone = generate_region(5, 0, 0, 16, 16)
    assert np.array_equal(whole.blocks[16:32, :, 16:32], alone.blocks)  # trees crossing borders included


def test_world_reads_outside_generated_area_safely():
    w = VoxelWorld(0)
    assert w.get(10_000, 20, 10_000) == Block.STONE  # not generated: solid, nothing falls out
    assert w.get(0, -1, 0) == Block.BEDROCK and w.get(0, HEIGHT, 0) == Block.AIR
    w.ensure([(0, 0)])
    top = w.surface_y(3, 3)
    assert w.get(3, top, 3) != Block.AIR and w.get(3, top + 1, 3) in (Block.AIR, Block.LEAVES, Block.LOG)


def test_editing_a_border_block_re_meshes_the_neighbour():
    w = VoxelWorld(0)
    w.ensure([(i, j) for i in range(-1, 3) for j in range(-1, 2)])
    w.mesh([(0, 0), (1, 0)])
    assert not w.dirty & {(0, 0), (1, 0)}
    w.set(15, 40, 5, Block.STONE)  # on chunk (0,0)'s +x border
    assert {(0, 0), (1, 0)} <= w.dirty


def test_animals_wander_and_their_appearance_is_an_event(voxel):
    px, pz = flat_arena(voxel, radius=12)
    cow = Animal(7, "cow", np.array([px + 0.5, 31.0, pz + 6.5]))
    voxel.animals.append(cow)
    events = []
    for _ in range(3):
        events += voxel.step(act())[4]["events"]
    appeared = [e for e in events if e["type"] == "entity_appeared"]
    assert appeared and appeared[0]["id"] == 7 and appeared[0]["kind"] == "cow"
    info = voxel.step(act())[4]
    assert [e["id"] for e in info["visible"]["entities"]] == [7]
    start = cow.pos.copy()
    for _ in range(200):
        voxel.step(act())
    assert np.linalg.norm(cow.pos - start) > 0.5  # it wandered
    assert cow.pos[1] == 31.0  # on the ground, not through it


def test_day_night_cycle_changes_phase_and_darkens():
    from voxel_helpers import make_voxel

    env = make_voxel(day_length=240, start_hours=12.0, animals=False)
    obs, _ = env.reset(seed=0)
    phases = set()
    darkest = obs.mean()
    for _ in range(120):
        obs, _, _, _, info = env.step(act())
        phases |= {e["to"] for e in info["events"] if e["type"] == "time_changed"}
        darkest = min(darkest, obs.mean())
    assert {"afternoon", "dusk", "night"} <= phases
    assert darkest < 0.5 * env.reset(seed=0, options={"start_hours": 12.0})[0].mean()
    env.close()
