"""Player physics: gravity and landing, walls, jumps, sneaking at edges, water."""

from __future__ import annotations

import numpy as np
from voxel_helpers import act, flat_arena

from envs.voxel.blocks import Block


def test_falls_and_lands_on_the_ground(voxel):
    px, pz = flat_arena(voxel, ground=30)
    voxel.player.pos = np.array([px + 0.5, 36.0, pz + 0.5])
    voxel.player.on_ground = False
    events = []
    for _ in range(40):
        events += voxel.step(act())[4]["events"]
    assert voxel.player.on_ground
    assert voxel.player.pos[1] == 31.0  # feet on the top face of the ground block at y=30
    falls = [e for e in events if e["type"] == "fell"]
    assert len(falls) == 1 and abs(falls[0]["distance"] - 5.0) < 0.01
    # 5 blocks: 2 points of fall damage (Minecraft: distance - 3).
    assert voxel.player.health == 18.0


def test_cannot_walk_through_a_wall(voxel):
    px, pz = flat_arena(voxel)
    for y in (31, 32, 33):
        voxel.world.set(px, y, pz + 3, Block.STONE)  # a 3-high wall 3 blocks ahead (+z is forward at yaw 0)
    for _ in range(60):
        voxel.step(act(forward=1))
        assert voxel.player.pos[2] + 0.3 <= pz + 3 + 1e-6  # the body's front never enters the wall block
    assert voxel.player.pos[2] + 0.3 >= pz + 3 - 1e-3  # it walked up to the wall
    assert abs(voxel.player.pos[0] - (px + 0.5)) < 1e-9  # and did not slide sideways


def test_jump_clears_one_block_but_not_two(voxel):
    px, pz = flat_arena(voxel)
    voxel.world.set(px, 31, pz + 2, Block.STONE)  # a single step
    for _ in range(40):
        voxel.step(act(forward=1, jump=1))
    assert voxel.player.pos[2] > pz + 3  # got over it
    px, pz = flat_arena(voxel)
    for y in (31, 32):
        voxel.world.set(px, y, pz + 2, Block.STONE)  # two high
    for _ in range(40):
        voxel.step(act(forward=1, jump=1))
    assert voxel.player.pos[2] + 0.3 <= pz + 2 + 1e-6


def test_sneaking_does_not_walk_off_an_edge(voxel):
    px, pz = flat_arena(voxel)
    for z in range(pz + 2, pz + 7):
        for x in range(px - 2, px + 3):
            voxel.world.set(x, 30, z, Block.AIR)  # a pit starting 2 blocks ahead
    for _ in range(60):
        voxel.step(act(forward=1, sneak=1))
    assert voxel.player.on_ground and voxel.player.pos[1] == 31.0
    for _ in range(30):
        voxel.step(act(forward=1))
    assert voxel.player.pos[1] < 31.0  # without sneaking it walks off


def test_sprint_is_faster_than_walk_and_water_slows(voxel):
    px, pz = flat_arena(voxel, radius=12)
    start = voxel.player.pos.copy()
    for _ in range(20):
        voxel.step(act(forward=1))
    walked = voxel.player.pos[2] - start[2]
    flat_arena(voxel, radius=12)
    start = voxel.player.pos.copy()
    for _ in range(20):
        voxel.step(act(forward=1, sprint=1))
    sprinted = voxel.player.pos[2] - start[2]
    assert 3.5 < walked < 4.5  # 4.317 blocks/s for 1 s (minus the first tick's acceleration)
    assert sprinted > walked * 1.2


def test_entering_water_is_an_event_and_the_player_sinks_slowly(voxel):
    px, pz = flat_arena(voxel)
    for x in range(px - 2, px + 3):
        for z in range(pz + 1, pz + 5):
            for y in (29, 30):
                voxel.world.set(x, y, z, Block.WATER)
    events = []
    for _ in range(15):
        events += voxel.step(act(forward=1))[4]["events"]
    assert any(e["type"] == "entered_water" for e in events)
    assert voxel.player.in_water
