"""Captions from ground truth: a dense caption (several sentences) and a short prompt per segment and episode.

Everything said is computed from the engine's `info` (biome, time of day, what is visible, the pose, the actions
and the event log); phrasing varies through templates and synonyms drawn from a seeded generator, so captions are
deterministic under a seed and never contradict the ground truth. `expand_prompt` turns a short user prompt into
the same dense style (the Sora report's prompt upsampling, done offline with this grammar).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from store.prompts import BIOME_SHORT, SCENE_PHRASES, TIME_PHRASES

BIOME_PHRASES = {
    "plains": ["grassy plains", "open grassland", "a grassy meadow"],
    "forest": ["a forest", "a dense wood", "a leafy forest"],
    "desert": ["a desert", "sandy desert dunes", "a dry sandy desert"],
    "snow": ["snowy land", "a snow-covered landscape", "snowy taiga"],
    "mountains": ["the mountains", "rocky mountains", "steep stony mountains"],
    "water": ["open water", "a lake", "the water's edge"],
    "beach": ["a sandy beach", "a sandy shore", "the beach"],
}
OPENERS = ["A first-person view in {place} {time}.", "First-person footage of {place} {time}.",
           "Seen through the player's eyes: {place} {time}."]
NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _n(k: int) -> str:
    return NUMBER_WORDS[k] if 0 <= k < len(NUMBER_WORDS) else str(k)


def _plural(word: str, k: int) -> str:
    if k == 1:
        return word
    return word if word.endswith(("s", "sheep")) else word + "s"


def _list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


# -- voxel -------------------------------------------------------------------------------------------------------
def _voxel_motion(rng: np.random.Generator, infos: list[dict], actions: list[dict]) -> str:
    p0, p1 = infos[0]["pose"]["position"], infos[-1]["pose"]["position"]
    dist = math.hypot(p1[0] - p0[0], p1[2] - p0[2])
    yaw = sum(float(a.get("camera", (0, 0))[1]) for a in actions)
    pitch = infos[-1]["pose"]["pitch"] - infos[0]["pose"]["pitch"]
    jumps = sum(int(a.get("jump", 0)) for a in actions)
    sprint = sum(int(a.get("sprint", 0)) and int(a.get("forward", 0)) for a in actions) > len(actions) / 2
    swim = any(i["pose"]["in_water"] for i in infos)
    parts = []
    if dist < 0.5:
        parts.append(_pick(rng, ["The player stands still", "The player stays in place"]))
    else:
        verb = "swims" if swim else ("sprints" if sprint else _pick(rng, ["walks", "moves"]))
        parts.append(f"The player {verb} about {max(1, round(dist))} {_plural('block', max(1, round(dist)))}")
    if abs(yaw) >= 20:
        side = "right" if yaw > 0 else "left"
        parts.append(_pick(rng, [f"turning {side}", f"while turning to the {side}"]))
    sentence = " ".join(parts[:1]) + (", " + parts[1] if len(parts) > 1 else "") + "."
    extra = []
    if pitch >= 15:
        extra.append("looks down")
    elif pitch <= -15:
        extra.append("looks up")
    if jumps and not swim and dist >= 0.5:
        extra.append("jumps along the way" if jumps > 2 else "jumps")
    if extra:
        sentence += f" It {_list(extra)}."
    return sentence


def _voxel_events(rng: np.random.Generator, events: list[dict]) -> list[str]:
    out = []
    broken = Counter(e["block"] for e in events if e["type"] == "block_broken")
    placed = Counter(e["block"] for e in events if e["type"] == "block_placed")
    collected = Counter()
    for e in events:
        if e["type"] == "item_collected":
            collected[e["item"]] += e["count"]
    if broken:
        things = _list([f"{_n(k)} {b} {_plural('block', k)}" for b, k in sorted(broken.items())])
        out.append(f"It {_pick(rng, ['breaks', 'mines', 'digs out'])} {things}.")
    if collected:
        things = _list([f"{_n(k)} {i}" for i, k in sorted(collected.items())])
        out.append(f"It collects {things}.")
    if placed:
        things = _list([f"{_n(k)} {b} {_plural('block', k)}" for b, k in sorted(placed.items())])
        out.append(f"It places {things}.")
    appeared = Counter(e["kind"] for e in events if e["type"] == "entity_appeared")
    if appeared:
        seen = _list([f"{_n(k) if k > 1 else 'a'} {_plural(kind, k)}" for kind, k in sorted(appeared.items())])
        out.append(f"{seen[0].upper()}{seen[1:]} {'comes' if sum(appeared.values()) == 1 else 'come'} into view.")
    hits = Counter(e["kind"] for e in events if e["type"] == "hit_entity")
    for kind, k in sorted(hits.items()):
        out.append(f"It hits a {kind}{'' if k == 1 else f' {_n(k)} times'}, which runs away.")
    water = [e["type"] for e in events if e["type"] in ("entered_water", "left_water")]
    if len(water) > 2:  # wading along a shore flips in and out: say it once
        out.append("It wades in and out of the water.")
    elif water:
        out.append("It wades into the water." if water[-1] == "entered_water" else "It climbs out of the water.")
    for e in events:
        t = e["type"]
        if t == "fell":
            into = " into water" if e["into_water"] else ""
            out.append(f"It drops about {max(2, round(e['distance']))} blocks{into}.")
        elif t == "entered_biome":
            out.append(f"It enters {_pick(rng, BIOME_PHRASES[e['biome']])}.")
        elif t == "time_changed":
            out.append(f"Time passes and it is now {e['to'] if e['to'] != 'noon' else 'midday'}.")
        elif t == "goal_reached":
            out.append("It reaches the glowing goal pillar.")
        elif t == "died":
            out.append("The player dies.")
    return out


def _voxel_visible(rng: np.random.Generator, infos: list[dict]) -> str:
    totals: Counter = Counter()
    for i in infos:
        for name, frac in i["visible"]["blocks"].items():
            totals[name] += frac / len(infos)
    sky = sum(i["visible"]["sky"] for i in infos) / len(infos)
    top = [n for n, f in totals.most_common(3) if f >= 0.05]
    parts = []
    if top:
        parts.append(f"{_pick(rng, ['The view shows mostly', 'Mostly visible are', 'The scene is mostly'])} "
                     f"{_list(top)}")
    if sky >= 0.3:
        parts.append("with a wide view of the sky" if parts else "The sky fills much of the view")
    return (" ".join(parts) + ".") if parts else ""


def caption_voxel(infos: list[dict], actions: list[dict], events: list[dict], seed: int) -> tuple[str, str]:
    """(dense caption, short prompt) of a voxel clip from its per-step infos, actions taken and events."""
    rng = np.random.default_rng(seed)
    first = infos[0]
    biome, phase = first["biome"], first["day_phase"]
    place, time = _pick(rng, BIOME_PHRASES[biome]), _pick(rng, TIME_PHRASES[phase])
    sentences = [_pick(rng, OPENERS).format(place=place, time=time)]
    visible = _voxel_visible(rng, infos)
    if visible:
        sentences.append(visible)
    sentences.append(_voxel_motion(rng, infos, actions))
    sentences += _voxel_events(rng, events)
    dense = " ".join(s[0].upper() + s[1:] for s in sentences)
    doing = []
    if any(e["type"] == "block_broken" for e in events):
        doing.append("mining")
    if any(e["type"] == "block_placed" for e in events):
        doing.append("building")
    p0, p1 = first["pose"]["position"], infos[-1]["pose"]["position"]
    doing.insert(0, "walking" if math.hypot(p1[0] - p0[0], p1[2] - p0[2]) >= 0.5 else "looking around")
    short = f"{BIOME_SHORT[biome]} {TIME_PHRASES[phase][0]}, {_list(doing)}"
    return dense, short


# -- physics -----------------------------------------------------------------------------------------------------


def caption_physics(infos: list[dict], actions: np.ndarray, events: list[dict], seed: int) -> tuple[str, str]:
    """(dense caption, short prompt) of a physics clip."""
    rng = np.random.default_rng(seed)
    first = infos[0]
    scene = first["scene"]["kind"]
    objects = [o["name"] for o in first["objects"]]
    seen = [o["name"] for o in first["objects"] if o["visible"]] or objects
    named = [f"a {n}" for n in seen[:5]] + ([f"{_n(len(seen) - 5)} more"] if len(seen) > 5 else [])
    listed = _list(named)
    sentences = [f"{_pick(rng, ['On', 'Upon'])} {_pick(rng, SCENE_PHRASES[scene])} "
                 f"{'lie' if len(seen) > 1 else 'lies'} {listed}."]
    p0, p1 = first["pusher"]["position"], infos[-1]["pusher"]["position"]
    moved = float(np.hypot(p1[0] - p0[0], p1[1] - p0[1]))
    if moved >= 0.05:
        sentences.append(f"A dark puck slides about {round(moved * 100)} cm across the "
                         f"{'table' if scene == 'table' else 'floor'}.")
    az = infos[-1]["camera"]["azimuth"] - first["camera"]["azimuth"]
    az = (az + 180) % 360 - 180
    if abs(az) >= 10:
        sentences.append(f"The camera orbits {'left' if az > 0 else 'right'} around the scene.")
    dz = infos[-1]["camera"]["distance"] / first["camera"]["distance"]
    if dz >= 1.15 or dz <= 0.87:
        sentences.append(f"The camera {'pulls back' if dz > 1 else 'moves closer'}.")
    said = set()
    for e in events:
        t = e["type"]
        if t == "collision" and e["a"] < 1000 and e["b"] < 1000:
            key = ("c", e["a"], e["b"])
            if key not in said:
                said.add(key)
                sentences.append(f"The {e['a_name']} {_pick(rng, ['hits', 'bumps into', 'collides with'])} "
                                 f"the {e['b_name']}.")
        elif t == "collision" and 1004 in (e["a"], e["b"]) and min(e["a"], e["b"]) < 1000:
            name = e["a_name"] if e["a"] < 1000 else e["b_name"]
            if ("p", name) not in said:
                said.add(("p", name))
                sentences.append(f"The puck pushes the {name}.")
        elif t == "fell_off_table":
            sentences.append(f"The {e['name']} falls off the table.")
        elif t == "toppled":
            sentences.append(f"The {e['name']} topples over.")
        elif t == "came_to_rest" and len(sentences) < 12:
            sentences.append(f"The {e['name']} comes to rest.")
        elif t == "entered_goal":
            sentences.append(f"The {e['name']} reaches the green goal.")
    dense = " ".join(sentences)
    happened = [w for w, t in (("collisions", "collision"), ("a fall", "fell_off_table"), ("toppling", "toppled"))
                if any(e["type"] == t for e in events)]
    short = f"{_n(len(objects))} objects on {SCENE_PHRASES[scene][0]}" + (f", {_list(happened)}" if happened else "")
    return dense, short


# -- prompt upsampling -------------------------------------------------------------------------------------------
_BIOME_WORDS = {"snow": "snow", "snowy": "snow", "ice": "snow", "taiga": "snow", "forest": "forest",
                "woods": "forest", "wood": "forest", "trees": "forest", "desert": "desert", "dunes": "desert",
                "mountain": "mountains", "mountains": "mountains", "hills": "mountains", "plains": "plains",
                "meadow": "plains", "grass": "plains", "grassland": "plains", "lake": "water", "sea": "water",
                "ocean": "water", "water": "water", "beach": "beach", "shore": "beach"}
_TIME_WORDS = {"night": "night", "midnight": "night", "dark": "night", "dawn": "dawn", "sunrise": "dawn",
               "morning": "morning", "noon": "noon", "midday": "noon", "day": "noon", "afternoon": "afternoon",
               "dusk": "dusk", "sunset": "dusk", "evening": "dusk"}
_ACTION_WORDS = {"mine": "It breaks several blocks.", "mining": "It breaks several blocks.",
                 "dig": "It digs into the ground.", "digging": "It digs into the ground.",
                 "build": "It places blocks to build.", "building": "It places blocks to build.",
                 "swim": "It swims through the water.", "swimming": "It swims through the water.",
                 "run": "The player sprints ahead.", "running": "The player sprints ahead.",
                 "jump": "It jumps along the way.", "jumping": "It jumps along the way."}
_ANIMALS = {"pig", "pigs", "cow", "cows", "sheep", "chicken", "chickens"}


# -- other gymnasium games -----------------------------------------------------------------------------------------
def game_name(env_id: str) -> str:
    """A readable game name from an env id: ALE/Breakout-v5 -> Breakout, mod:MyGame-v0 -> MyGame."""
    name = env_id.split(":")[-1].split("/")[-1]
    return re.sub(r"-v\d+$", "", name)


def caption_game(env_id: str, kwargs: dict, infos: list[dict], rewards: list[float], events: list[dict]
                 ) -> tuple[str, str]:
    """(dense caption, short prompt) of a clip of another game: only what is known (the game, its scenario, the
    number of steps, the rewards and lives lost); never what the frames show, which nobody measured."""
    game = game_name(env_id)
    scenario = kwargs.get("scenario") or kwargs.get("game")
    title = f"{game} ({scenario})" if scenario else game
    steps = len(rewards)
    got = [float(r) for r in rewards if r != 0]
    sentences = [f"{title} gameplay, {steps} {_plural('step', steps)}."]
    if got:
        total = sum(got)
        sentences.append(f"{_n(len(got)).capitalize()} {_plural('reward', len(got))}, {total:+g} in all.")
    else:
        sentences.append("No reward.")
    lost = sum(1 for e in events if e.get("type") == "life_lost")
    if lost:
        sentences.append(f"{_n(lost).capitalize()} {_plural('life', lost) if lost == 1 else 'lives'} lost.")
    return " ".join(sentences), f"{game} gameplay"


def expand_prompt(prompt: str, seed: int = 0) -> str:
    """Turn a short prompt ("snowy forest at night") into a dense caption in the training captions' style.

    Raises:
        ValueError: the prompt has no word this grammar knows (biomes, times of day, actions, animals).
    """
    words = re.findall(r"[a-z]+", prompt.lower())
    biomes = [_BIOME_WORDS[w] for w in words if w in _BIOME_WORDS]
    times = [_TIME_WORDS[w] for w in words if w in _TIME_WORDS]
    acts = list(dict.fromkeys(_ACTION_WORDS[w] for w in words if w in _ACTION_WORDS))
    animals = [w.rstrip("s") if w not in ("sheep",) else w for w in words if w in _ANIMALS]
    if not (biomes or times or acts or animals):
        raise ValueError(f"no known words in prompt {prompt!r}; use biomes (forest, desert, snowy, mountains, "
                         f"lake, beach, plains), times (dawn, morning, noon, afternoon, dusk, night), actions "
                         f"(mine, build, swim, run, jump) or animals (pig, cow, sheep, chicken)")
    rng = np.random.default_rng(seed)
    # "snowy forest": snow wins over forest for the ground, the trees are kept as a visible detail.
    biome = "snow" if "snow" in biomes else (biomes[0] if biomes else "plains")
    phase = times[0] if times else "morning"
    place, time = _pick(rng, BIOME_PHRASES[biome]), _pick(rng, TIME_PHRASES[phase])
    sentences = [_pick(rng, OPENERS).format(place=place, time=time)]
    visible = {"snow": ["snow", "spruce leaves", "spruce log"], "forest": ["leaves", "grass", "log"],
               "desert": ["sand", "cactus"], "mountains": ["stone", "snow", "gravel"], "water": ["water", "sand"],
               "beach": ["sand", "water"], "plains": ["grass", "leaves"]}[biome]
    if "forest" in biomes and biome == "snow":
        visible = ["snow", "spruce leaves", "spruce log"]
    sentences.append(f"The view shows mostly {_list(visible)}.")
    sentences.append(acts.pop(0) if acts and acts[0].startswith("The player") else
                     f"The player {_pick(rng, ['walks', 'moves'])} about {int(rng.integers(3, 9))} blocks.")
    sentences += acts
    if animals:
        a = list(dict.fromkeys(animals))
        sentences.append(f"{_list(['a ' + x for x in a]).capitalize()} {'comes' if len(a) == 1 else 'come'} into view.")
    return " ".join(sentences)
