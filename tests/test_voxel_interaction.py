"""Breaking and placing blocks, inventory and hotbar, hitting animals."""

from __future__ import annotations

import numpy as np
from voxel_helpers import act, flat_arena

from envs.voxel.blocks import RULES, Block
from envs.voxel.entities import Animal


def _look_down(env):
    env.step(act(camera=[90.0, 0.0]))  # pitch +90: straight down at the block under the feet


def test_breaking_takes_the_blocks_break_time_and_fills_the_inventory(voxel):
    px, pz = flat_arena(voxel, block=Block.DIRT)
    _look_down(voxel)
    info = voxel.step(act())[4]
    assert info["target"]["kind"] == "block" and info["target"]["name"] == "dirt"
    assert info["target"]["pos"] == [px, 30, pz]
    ticks = RULES[Block.DIRT].break_ticks
    events = []
    for _ in range(ticks - 1):
        events += voxel.step(act(attack=1))[4]["events"]
    assert voxel.world.get(px, 30, pz) == Block.DIRT and not events  # not yet
    info = voxel.step(act(attack=1))[4]
    types = [e["type"] for e in info["events"]]
    assert types[:2] == ["block_broken", "item_collected"]
    assert voxel.world.get(px, 30, pz) == Block.AIR
    assert info["inventory"]["items"]["dirt"] == 17  # 16 to start with + 1


def test_releasing_attack_resets_break_progress(voxel):
    px, pz = flat_arena(voxel, block=Block.STONE)
    _look_down(voxel)
    for _ in range(RULES[Block.STONE].break_ticks - 1):
        voxel.step(act(attack=1))
    voxel.step(act())
    for _ in range(RULES[Block.STONE].break_ticks - 1):
        voxel.step(act(attack=1))
    assert voxel.world.get(px, 30, pz) == Block.STONE


def test_placing_uses_the_selected_slot(voxel):
    px, pz = flat_arena(voxel)
    voxel.step(act(camera=[45.0, 0.0]))  # look at the ground ahead
    info = voxel.step(act())[4]
    target = info["target"]["pos"]
    info = voxel.step(act(use=1, hotbar=1))[4]
    placed = [e for e in info["events"] if e["type"] == "block_placed"]
    assert len(placed) == 1 and placed[0]["block"] == "dirt"
    x, y, z = placed[0]["pos"]
    assert (x, y, z) == (target[0], target[1] + 1, target[2])  # on the top face it was aimed at
    assert voxel.world.get(x, y, z) == Block.DIRT
    assert info["inventory"]["items"]["dirt"] == 15
    # Holding `use` places again only after the cooldown (4 ticks), like Minecraft's right-click delay.
    n = sum(e["type"] == "block_placed" for _ in range(3) for e in voxel.step(act(use=1))[4]["events"])
    assert n == 0


def test_cannot_place_inside_the_player(voxel):
    flat_arena(voxel)
    _look_down(voxel)
    info = voxel.step(act(use=1))[4]
    assert not [e for e in info["events"] if e["type"] == "block_placed"]


def test_bedrock_cannot_be_broken(voxel):
    px, pz = flat_arena(voxel, block=Block.BEDROCK)
    _look_down(voxel)
    for _ in range(30):
        voxel.step(act(attack=1))
    assert voxel.world.get(px, 30, pz) == Block.BEDROCK


def test_hitting_an_animal_is_an_event_and_it_flees(voxel):
    px, pz = flat_arena(voxel, radius=10)
    pig = Animal(99, "pig", np.array([px + 0.5, 31.0, pz + 2.5]))
    pig.on_ground = True
    voxel.animals.append(pig)
    voxel.step(act(camera=[20.0, 0.0]))
    info = voxel.step(act(attack=1))[4]
    assert {"type": "hit_entity", "id": 99, "kind": "pig", "step": voxel.t} in info["events"]
    before = pig.pos.copy()
    for _ in range(10):
        voxel.step(act())
    assert np.linalg.norm(pig.pos - before) > 0.5
