"""The words short prompts use for scene attributes: part of the data contract.

`datagen.captions` writes prompts with them ("snowy land at night, walking", "3 objects on a wooden table"); the
evaluation's text-adherence probes read the same attributes back out of a store's prompts, so both import them here.
"""

BIOME_SHORT = {"plains": "plains", "forest": "forest", "desert": "desert", "snow": "snowy land",
               "mountains": "mountains", "water": "lake", "beach": "beach"}
TIME_PHRASES = {
    "night": ["at night", "in the dark of night", "under a night sky"],
    "dawn": ["at dawn", "at sunrise", "in the early dawn light"],
    "morning": ["in the morning", "on a bright morning", "in the morning light"],
    "noon": ["at midday", "around noon", "under the midday sun"],
    "afternoon": ["in the afternoon", "on a sunny afternoon", "in the afternoon light"],
    "dusk": ["at dusk", "at sunset", "in the evening glow"],
}
SCENE_PHRASES = {"table": ["a wooden table", "a table top"], "floor": ["a checkered floor", "a tiled floor"],
                 "room": ["a small room", "the floor of a room"]}
