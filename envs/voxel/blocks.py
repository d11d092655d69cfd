"""The block types of the voxel world: ids, looks, and game rules (solidity, break time, drops)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from renderers.textures import BlockMaterial


class Block(IntEnum):
    AIR = 0
    GRASS = 1
    DIRT = 2
    STONE = 3
    COBBLESTONE = 4
    SAND = 5
    GRAVEL = 6
    WATER = 7
    LOG = 8
    LEAVES = 9
    PLANKS = 10
    SNOW = 11
    ICE = 12
    COAL_ORE = 13
    IRON_ORE = 14
    GOLD_ORE = 15
    DIAMOND_ORE = 16
    BEDROCK = 17
    CACTUS = 18
    GOAL = 19
    SPRUCE_LOG = 20
    SPRUCE_LEAVES = 21


@dataclass(frozen=True)
class BlockRules:
    """Game rules of a block.

    Attributes:
        solid: collides with players and animals.
        break_ticks: steps of holding `attack` on it to break it; 0 means it cannot be broken.
        drop: the item added to the inventory when broken (None: nothing).
        placeable: can be put in the hotbar and placed with `use`.
    """

    solid: bool = True
    break_ticks: int = 4
    drop: Block | None = None
    placeable: bool = True


_DIRT_BROWN = (134, 96, 67)
MATERIALS: dict[Block, BlockMaterial] = {
    Block.GRASS: BlockMaterial("grass", _DIRT_BROWN, top=(95, 159, 53), bottom=_DIRT_BROWN, pattern="fringe",
                               top_pattern="noise", bottom_pattern="noise", accent=(95, 159, 53)),
    Block.DIRT: BlockMaterial("dirt", _DIRT_BROWN),
    Block.STONE: BlockMaterial("stone", (125, 125, 125)),
    Block.COBBLESTONE: BlockMaterial("cobblestone", (110, 110, 110), pattern="cobble"),
    Block.SAND: BlockMaterial("sand", (219, 207, 163), pattern="grain"),
    Block.GRAVEL: BlockMaterial("gravel", (131, 127, 126), pattern="gravel"),
    Block.WATER: BlockMaterial("water", (40, 90, 200), pattern="water", opaque=False, fluid=True, alpha=0.7),
    Block.LOG: BlockMaterial("log", (102, 81, 51), top=(160, 130, 80), pattern="bark", top_pattern="rings",
                             accent=(120, 95, 58)),
    Block.LEAVES: BlockMaterial("leaves", (60, 120, 40), pattern="leaves"),
    Block.PLANKS: BlockMaterial("planks", (162, 130, 78), pattern="planks"),
    Block.SNOW: BlockMaterial("snow", _DIRT_BROWN, top=(240, 245, 250), pattern="fringe", top_pattern="grain",
                              bottom_pattern="noise", accent=(240, 245, 250)),
    Block.ICE: BlockMaterial("ice", (150, 190, 245), pattern="grain"),
    Block.COAL_ORE: BlockMaterial("coal ore", (125, 125, 125), pattern="ore", accent=(30, 30, 30)),
    Block.IRON_ORE: BlockMaterial("iron ore", (125, 125, 125), pattern="ore", accent=(216, 175, 147)),
    Block.GOLD_ORE: BlockMaterial("gold ore", (125, 125, 125), pattern="ore", accent=(250, 220, 60)),
    Block.DIAMOND_ORE: BlockMaterial("diamond ore", (125, 125, 125), pattern="ore", accent=(90, 230, 230)),
    Block.BEDROCK: BlockMaterial("bedrock", (60, 60, 60), pattern="gravel"),
    Block.CACTUS: BlockMaterial("cactus", (50, 130, 45), top=(90, 160, 70), pattern="cactus", top_pattern="noise"),
    Block.GOAL: BlockMaterial("goal", (250, 40, 200), pattern="beacon", accent=(255, 240, 60), emissive=True),
    Block.SPRUCE_LOG: BlockMaterial("spruce log", (58, 40, 25), top=(120, 90, 55), pattern="bark",
                                    top_pattern="rings", accent=(80, 58, 35)),
    Block.SPRUCE_LEAVES: BlockMaterial("spruce leaves", (40, 85, 50), pattern="leaves"),
}

RULES: dict[Block, BlockRules] = {
    Block.AIR: BlockRules(solid=False, break_ticks=0, placeable=False),
    Block.GRASS: BlockRules(break_ticks=3, drop=Block.DIRT),
    Block.DIRT: BlockRules(break_ticks=3, drop=Block.DIRT),
    Block.STONE: BlockRules(break_ticks=8, drop=Block.COBBLESTONE),
    Block.COBBLESTONE: BlockRules(break_ticks=8, drop=Block.COBBLESTONE),
    Block.SAND: BlockRules(break_ticks=3, drop=Block.SAND),
    Block.GRAVEL: BlockRules(break_ticks=3, drop=Block.GRAVEL),
    Block.WATER: BlockRules(solid=False, break_ticks=0, placeable=False),
    Block.LOG: BlockRules(break_ticks=5, drop=Block.LOG),
    Block.LEAVES: BlockRules(break_ticks=1, drop=None, placeable=False),
    Block.PLANKS: BlockRules(break_ticks=5, drop=Block.PLANKS),
    Block.SNOW: BlockRules(break_ticks=3, drop=Block.DIRT),
    Block.ICE: BlockRules(break_ticks=4, drop=None, placeable=False),
    Block.COAL_ORE: BlockRules(break_ticks=10, drop=Block.COAL_ORE),
    Block.IRON_ORE: BlockRules(break_ticks=12, drop=Block.IRON_ORE),
    Block.GOLD_ORE: BlockRules(break_ticks=12, drop=Block.GOLD_ORE),
    Block.DIAMOND_ORE: BlockRules(break_ticks=14, drop=Block.DIAMOND_ORE),
    Block.BEDROCK: BlockRules(break_ticks=0, placeable=False),
    Block.CACTUS: BlockRules(break_ticks=2, drop=Block.CACTUS),
    Block.GOAL: BlockRules(break_ticks=0, placeable=False),
    Block.SPRUCE_LOG: BlockRules(break_ticks=5, drop=Block.SPRUCE_LOG),
    Block.SPRUCE_LEAVES: BlockRules(break_ticks=1, drop=None, placeable=False),
}

NUM_BLOCKS = len(Block)
LOGS = frozenset({Block.LOG, Block.SPRUCE_LOG})


def _lut(pred) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    for b in Block:
        table[b] = pred(b)
    return table


OPAQUE = _lut(lambda b: b != Block.AIR and not (b in MATERIALS and MATERIALS[b].fluid))
FLUID = _lut(lambda b: b in MATERIALS and MATERIALS[b].fluid)
SOLID = _lut(lambda b: RULES[b].solid)


def materials_by_id() -> list[BlockMaterial | None]:
    """Materials indexed by block id, for the renderer (None for air)."""
    return [MATERIALS.get(b) for b in Block]


def block_name(block_id: int) -> str:
    """Human name of a block id ('air' for 0)."""
    return MATERIALS[Block(block_id)].name if block_id in MATERIALS else Block(block_id).name.lower()
