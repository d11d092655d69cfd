"""worldsim probe: does the world model simulate what the engine does? Scripted episodes with ground truth.

Each probe kind is a scripted episode of the engine the model was trained on (datagen/probes.py; voxel or physics,
read from the checkpoint's actions, with the physics env's control, orbit rate and fps from its training data).
The model is dreamed from the engine's frames under the same actions and scored against the engine (ceiling)
and copying the last real frame (floor). Voxel: a warm-up of explorer steps (the context), then a script:
- revisit: look 180 degrees away and back, standing still. Far point: dream vs engine beside copy-last; return:
  dream vs the frame before leaving (the engine: same view), share at 20 dB or more.
- interaction: break the block in front, then look away and back. persist: dreamed from just after the break, is
  the hole still there on return (within the pixels the break changed, nearer the engine's frame than the intact
  block's)? interact: dreamed from before the attack, does the model draw the hole itself?
Physics (tabletop scenes; what the model's action drives decides which apply):
- orbit (camera): the scene settles, the camera orbits 6 steps away and 6 back: 3D consistency (mean PSNR along
  the orbit, dream vs engine beside copy-last), the far point and the return as for revisit.
- drop: objects released above the table; the dream starts mid-fall: where do they land (centroid error in pixels
  against the engine's segmentation, beside copy-last's and the colour tracker's own error)?
- push (pusher): the puck drives into an object: where does the object end up, and the puck?
- colour (text control): prompts naming three objects of one colour ("On a table top lie a red rubber sphere, ...");
  is the colour named the one a text-to-video sample shows (pixel shares read by a colour table made from the
  engine's labelled renders), beside the engine's own frames of the scene and chance?
Episodes whose script did not do what it meant (no block in reach, player slid or fell, objects still rolling
during an orbit, a push that moved nothing) are skipped and counted.
Writes OUT/probe.json, OUT/report.md and frame strips OUT/frames/<kind>_<seed>.png (engine and dream rows at the
marked moments; colour: OUT/frames/colour.png, one row per colour).

examples:
  worldsim probe ckpt=runs/recipe/dit out=runs/probe
  worldsim probe ckpt=runs/recipe/dit kinds=[interaction] episodes=32 steps=8
  worldsim probe ckpt=runs/physics/dit kinds=[orbit,drop,push]
"""

from __future__ import annotations

import json
from pathlib import Path

from worldsim.errors import InputError


def engine_of(meta: dict) -> tuple[str, dict]:
    """The engine a checkpoint was trained on, from its action spec, and the probe env's settings from its training
    data (physics: `control`, `orbit_rate` and `fps`, so that an action means what it meant there)."""
    from envs.voxel.actions import FLAT_KEYS

    keys = list(meta.get("action_spec", {}).get("flat_keys", []))
    if keys == list(FLAT_KEYS):
        return "voxel", {}
    controls = {("push_x", "push_y"): "pusher", ("orbit", "elevation", "zoom"): "camera",
                ("push_x", "push_y", "orbit", "elevation", "zoom"): "both"}
    if tuple(keys) not in controls:
        raise InputError(f"{keys or 'no actions'}: the probes script the voxel and physics engines, and this "
                         "checkpoint was trained on neither's actions")
    kwargs = ((meta.get("stores") or [{}])[0].get("job") or {}).get("env_kwargs") or {}
    return "physics", {"control": controls[tuple(keys)], "orbit_rate": float(kwargs.get("orbit_rate", 60.0)),
                       "fps": int(meta.get("fps") or 15)}


def main(raw) -> int:
    import torch
    from PIL import Image
    from tqdm import tqdm

    from datagen.probes import KINDS, PHYSICS_KINDS, PHYSICS_NEEDS, physics_probe, voxel_probe
    from worldsim.eval import sim_probes as P
    from worldsim.model.render import check_render
    from worldsim.model.sampler import WorldSampler

    if raw.episodes < 1 or raw.pictures < 0:
        raise InputError("episodes must be >= 1 and pictures >= 0")
    s = WorldSampler.load(str(raw.ckpt), str(raw.device), decoder="auto")
    s.render = check_render(str(raw.render))
    engine, env = engine_of(s.meta)
    allowed = list(KINDS) if engine == "voxel" else [k for k in PHYSICS_KINDS if env["control"] in PHYSICS_NEEDS[k]]
    kinds = allowed if raw.kinds is None else [str(k) for k in raw.kinds]
    if not kinds or any(k not in allowed for k in kinds):
        raise InputError(f"kinds must be a non-empty list of {allowed} for this {engine} model"
                         f"{' (control=' + env['control'] + ')' if env else ''}, got {kinds}")
    steps = int(raw.steps) if raw.steps else s.dream_steps
    out = Path(str(raw.out))
    (out / "frames").mkdir(parents=True, exist_ok=True)
    result = {"checkpoint": {"path": str(raw.ckpt), "digest": s.digest, "step": s.meta.get("step")},
              "engine": engine, "env": env, "steps": steps, "decoder": s.decoder_name, "seed": int(raw.seed),
              "probes": {}}
    bar = tqdm(total=len(kinds) * int(raw.episodes), desc="probe", unit="episode")
    with torch.no_grad():
        for kind in kinds:
            if kind == "colour":
                result["probes"][kind] = colour_probe(P, s, env, steps, int(raw.seed), int(raw.episodes), out,
                                                      int(raw.pictures), bar)
                continue
            rows, skipped, drawn = [], 0, 0
            for i in range(int(raw.episodes)):
                seed = int(raw.seed) + i
                if engine == "voxel":
                    ep = voxel_probe(kind, seed, width=s.width, height=s.height, warmup=s.frames - s.k)
                else:
                    ep = physics_probe(kind, seed, width=s.width, height=s.height, **env)
                bar.update()
                if not ep["ok"]:
                    skipped += 1
                    continue
                row, pics, cols = score(P, s, ep, steps, seed)
                rows.append({"seed": seed, **row})
                if drawn < int(raw.pictures):
                    Image.fromarray(P.strip(pics, cols)).save(out / "frames" / f"{kind}_{seed}.png")
                    drawn += 1
            result["probes"][kind] = {**P.summarize(kind, [{k: v for k, v in r.items() if k != "seed"}
                                                            for r in rows], skipped), "per_episode": rows}
    bar.close()
    (out / "probe.json").write_text(json.dumps(result, indent=1))
    text = report(result)
    (out / "report.md").write_text(text)
    print(text)
    print(f"outputs: {out} (probe.json, report.md, frames/)")
    return 0


def colour_probe(P, s, env: dict, steps: int, seed: int, episodes: int, out: Path, pictures: int, bar) -> dict:
    """Text control of colour on physics scenes: max(2, episodes // 4) scenes per colour (seeds seed, seed + 1,
    ...), the colour table from 2 scenes per colour of other seeds (seed + 100000, ...)."""
    import numpy as np
    from PIL import Image

    from datagen.probes import colour_names, colour_scene

    names, per = colour_names(), max(2, episodes // 4)
    size = {"width": s.width, "height": s.height, **env}
    reference = [colour_scene(c, seed + 100000 + i, **size) for c in names for i in range(2)]
    scenes = [colour_scene(c, seed + i, **size) for i in range(per) for c in names]
    res = P.score_colours(s, scenes, reference, names, steps, seed)
    bar.update(episodes)
    videos, scenes = res.pop("_videos"), res.pop("_scenes")
    if pictures and videos:
        rows, seen = [], set()
        for sc, v in zip(scenes, videos, strict=True):
            if sc["colour"] not in seen:
                seen.add(sc["colour"])
                rows.append((sc["colour"], np.stack([sc["frames"][-1], v[0], v[len(v) // 2], v[-1]])))
        cols = [("engine", 0), ("sample t=0", 1), (f"t={len(videos[0]) // 2}", 2), (f"t={len(videos[0]) - 1}", 3)]
        Image.fromarray(P.strip(rows, cols)).save(out / "frames" / "colour.png")
    res["prompts"] = [sc["prompt"] for sc in scenes[: len(res["colours"])]]
    return res


def score(P, s, ep: dict, steps: int, seed: int) -> tuple[dict, list, list]:
    """One probe episode's scores, and the rows (label, frames) and columns (label, index) of its picture."""
    m, kind = ep["marks"], ep["kind"]
    if kind in ("revisit", "orbit"):
        row, made = (P.score_revisit if kind == "revisit" else P.score_orbit)(s, ep, steps, seed)
        return row, [("engine", ep["frames"]), ("dream", made)], [
            ("last real (leave)", m["leave"]), ("far", m["far"]), ("back", m["back"])]
    if kind == "interaction":
        row, made = P.score_interaction(s, ep, steps, seed)
        return row, [("engine", ep["frames"]), ("dream from before", made["before"]),
                     ("dream from after", made["after"])], [
            ("before attack", m["before"]), ("broken", m["broken"]), ("far", m["far"]), ("back", m["back"])]
    row, made = P.score_objects(s, ep, steps, seed)
    mid = (m["start"] + m["end"]) // 2
    return row, [("engine", ep["frames"]), ("dream", made)], [
        ("last real", m["start"]), (f"+{mid - m['start']}", mid), (f"end +{m['end'] - m['start']}", m["end"])]


def away_and_back(kind: str, res: dict, note: str = "") -> list[str]:
    """The far-point and return rows of a look (revisit) or orbit away and back."""
    return [f"| {kind} | far point PSNR (dB) | {res['far_model_psnr']:.2f} | copy-last {res['far_copy_last_psnr']:.2f};"
            f" beats it in {100 * res['far_beats_copy_last']:.0f}%{note} |",
            f"| {kind} | return PSNR vs frame before leaving (dB) | {res['return_model_psnr']:.2f} | engine "
            f"{res['return_engine_psnr']:.2f}; >= 20 dB in {100 * res['return_at_least_20db']:.0f}% |"]


def report(result: dict) -> str:
    lines = ["# worldsim probe report", "", f"checkpoint {result['checkpoint']['path']} (step "
             f"{result['checkpoint']['step']}, {result['checkpoint']['digest'][:12]}), {result['steps']} Euler "
             f"step(s), decoder {result['decoder']}", "", "| probe | measure | model | reference |",
             "|---|---|---|---|"]
    rev = result["probes"].get("revisit")
    if rev and rev["episodes"]:
        lines += away_and_back("revisit", rev, f"; n={rev['episodes']} ({rev['skipped']} skipped)")
    it = result["probes"].get("interaction")
    if it and it["episodes"]:
        n = f"n={it['episodes']} ({it['skipped']} skipped), {100 * it['changed_pixels']:.0f}% of pixels changed"
        lines += [f"| interaction | persist: hole still there on return | {100 * it['persist_kept']:.0f}% | "
                  f"changed region PSNR to engine (hole) {it['persist_psnr_to_changed']:.2f} vs to intact "
                  f"{it['persist_psnr_to_unchanged']:.2f} dB; {n} |",
                  f"| interaction | interact: model draws the hole itself | {100 * it['interact_drawn']:.0f}% | "
                  f"changed region PSNR to engine {it['interact_psnr_to_changed']:.2f} vs to intact "
                  f"{it['interact_psnr_to_unchanged']:.2f} dB |",
                  f"| interaction | far point PSNR (dB) | {it['far_model_psnr']:.2f} | copy-last "
                  f"{it['far_copy_last_psnr']:.2f} |"]
    orb = result["probes"].get("orbit")
    if orb and orb["episodes"]:
        n = f"n={orb['episodes']} ({orb['skipped']} skipped: objects still moving)"
        lines += [f"| orbit | 3D consistency: mean PSNR along the orbit (dB) | {orb['path_model_psnr']:.2f} | "
                  f"copy-last {orb['path_copy_last_psnr']:.2f}; {n} |", *away_and_back("orbit", orb)]
    for kind in ("drop", "push"):
        res = result["probes"].get(kind)
        if not (res and res["episodes"]):
            continue
        what = "landing" if kind == "drop" else "pushed object"
        if res.get("model_px") is not None:
            lines.append(f"| {kind} | {what}: end position error (px, objects the dream kept) | {res['model_px']:.2f} "
                         f"| copy-last {res['copy_last_px']:.2f}; colour tracker on the engine {res['ceiling_px']:.2f};"
                         f" nearer than copy-last {100 * res['closer_than_copy_last']:.0f}%; lost "
                         f"{100 * res['lost']:.0f}%; n={res['objects']} objects in {res['episodes']} episodes |")
        lines.append(f"| {kind} | end frame PSNR (dB) | {res['end_model_psnr']:.2f} | copy-last "
                     f"{res['end_copy_last_psnr']:.2f} |")
        if res.get("pusher_model_px") is not None:
            lines.append(f"| {kind} | puck end position error (px) | {res['pusher_model_px']:.2f} | copy-last "
                         f"{res['pusher_copy_last_px']:.2f}; lost {100 * res['pusher_lost']:.0f}% |")
    col = result["probes"].get("colour")
    if col and col.get("model"):
        m, e = col["model"], col["engine"]
        lines += [f"| colour (text) | the colour a prompt names is the one shown | {100 * m['accuracy']:.0f}% | "
                  f"engine {100 * e['accuracy']:.0f}%; chance {100 * col['chance']:.0f}% ({len(col['colours'])} "
                  f"colours, {col['samples']} samples) |",
                  f"| colour (text) | pixel share of a colour when named / when not | {m['named_share']:.4f} / "
                  f"{m['unnamed_share']:.4f} | engine {e['named_share']:.4f} / {e['unnamed_share']:.4f} |"]
    for kind, res in result["probes"].items():
        if kind == "colour":
            continue
        if not res["episodes"]:
            lines.append(f"| {kind} | skipped | all {res['skipped']} scripted episodes failed their script | |")
    return "\n".join(lines) + "\n"
