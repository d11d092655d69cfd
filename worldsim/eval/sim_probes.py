"""Scoring a world model on scripted engine episodes with ground truth (`worldsim probe`, docs/probes.md).

The episodes come from `datagen/probes.py` (frames, stored-aligned actions, marks). The model is rolled out from the
engine's frames up to a mark, under the episode's actions (`dreamed`), and its frames are scored against the engine's
(the ceiling) and against copying the last real frame (the floor):

- revisit (look 180 degrees away and back, standing still): at the far point, PSNR of the dream against the engine
  beside copy-last's (did it turn?); on return, PSNR of the dream against the frame before leaving (did it remember?)
  beside the engine's own return frame (its ceiling); the share of returns at 20 dB or better.
- interaction (break a block, look away and back): the pixels the break changed (`change_mask`: the engine's frame
  before the attack against its frame after the break). `persist`: dreamed from just after the break (the hole is in
  its context), is the hole still there on return: within the mask, is the dream nearer the engine's return frame
  (hole) than the frame before the attack (no hole)? `interact`: dreamed from before the attack, does its frame after
  the attack show the hole? Masked PSNRs beside the shares.
- orbit (physics: the camera orbits a still scene away and back): the revisit scores, plus 3D consistency along
  the path: the mean PSNR of the dream against the engine over the 12 orbit frames, beside copy-last's.
- drop / push (physics): where the objects end up. The engine's segmentation gives each object's pixels; the dream
  has no labels, so its pixels are labelled by colour: a table from quantised RGB to the label most engine pixels
  of that colour have, in the last real frame and the engine's end frame (`colour_table`). Per object that moved
  on screen (drop: every one; push: the pushed one, and the puck), the distance in pixels between its centroid in
  the dream and in the engine at the end, beside copy-last's (where it was in the last real frame; nearer counts
  when by more than CLOSER) and beside the table's own error on the engine's frame (its ceiling). Objects the table
  cannot follow on the engine's own end frame (fewer than TRACKABLE of its pixels, or of the pixels it labels so,
  right: colours shared with other things) are not scored; an object the dream lost (fewer than 2 pixels of its
  colours) counts as lost, not as an error.
- colour (physics, text control): does a text-to-video sample of a prompt naming one colour for every object show
  that colour (`score_colours`)?
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.eval.metrics import dream_after, psnr_uint8, revisit_psnrs
from worldsim.model.frames import psnr_of_mse
from worldsim.model.sampler import WorldSampler

COLOUR_BINS = 16  # the colour tracker's RGB grid: 16 levels per channel
COLOUR_PURITY = 0.8  # the colour probe reads only colours that are one label's this share of the time
TRACKABLE = 0.8  # share of an object's pixels the tracker must label right in the engine's frame (and of its label)
CLOSER = 1.0  # pixels by which the dream must beat copy-last's end position error to count as nearer


def dreamed(sampler: WorldSampler, ep: dict[str, Any], mark: str, steps: int, seed: int) -> np.ndarray:
    """The episode's frames with everything after frame `marks[mark]` dreamed by the model (`dream_after`)."""
    return dream_after(sampler, ep["frames"], ep["actions"], int(ep["marks"][mark]), steps, seed)


def change_mask(a: np.ndarray, b: np.ndarray, threshold: int = 24) -> np.ndarray:
    """(H, W) bool: pixels whose colour changed by more than `threshold` in some channel, grown by one pixel."""
    m = (np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > threshold)
    grown = m.copy()
    grown[1:] |= m[:-1]
    grown[:-1] |= m[1:]
    grown[:, 1:] |= m[:, :-1]
    grown[:, :-1] |= m[:, 1:]
    return grown


def masked_mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    return float(d[mask].mean()) if mask.any() else float("nan")


def score_revisit(sampler: WorldSampler, ep: dict[str, Any], steps: int, seed: int) -> tuple[dict[str, float],
                                                                                            np.ndarray]:
    m, f = ep["marks"], ep["frames"]
    made = dreamed(sampler, ep, "leave", steps, seed)
    return revisit_psnrs(made, f, m["leave"], m["far"], m["back"]), made


def score_interaction(sampler: WorldSampler, ep: dict[str, Any], steps: int, seed: int
                      ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    m, f = ep["marks"], ep["frames"]
    mask = change_mask(f[m["before"]], f[m["leave"]])
    after = dreamed(sampler, ep, "leave", steps, seed)  # the hole is in the context
    before = dreamed(sampler, ep, "before", steps, seed + 1)  # the model must break the block itself
    row = {"changed_pixels": float(mask.mean()),
           "persist_mse_to_changed": masked_mse(after[m["back"]], f[m["back"]], mask),
           "persist_mse_to_unchanged": masked_mse(after[m["back"]], f[m["before"]], mask),
           "interact_mse_to_changed": masked_mse(before[m["broken"]], f[m["broken"]], mask),
           "interact_mse_to_unchanged": masked_mse(before[m["broken"]], f[m["before"]], mask),
           "return_model_psnr": psnr_uint8(after[m["back"]], f[m["back"]]),
           "far_model_psnr": psnr_uint8(after[m["far"]], f[m["far"]]),
           "far_copy_last_psnr": psnr_uint8(f[m["leave"]], f[m["far"]])}
    row["persist_kept"] = float(row["persist_mse_to_changed"] < row["persist_mse_to_unchanged"])
    row["interact_drawn"] = float(row["interact_mse_to_changed"] < row["interact_mse_to_unchanged"])
    return row, {"after": after, "before": before}


def score_orbit(sampler: WorldSampler, ep: dict[str, Any], steps: int, seed: int) -> tuple[dict[str, float],
                                                                                          np.ndarray]:
    m, f = ep["marks"], ep["frames"]
    made = dreamed(sampler, ep, "leave", steps, seed)
    path = range(m["leave"] + 1, m["back"] + 1)
    row = revisit_psnrs(made, f, m["leave"], m["far"], m["back"])
    row["path_model_psnr"] = float(np.mean([psnr_uint8(made[t], f[t]) for t in path]))
    row["path_copy_last_psnr"] = float(np.mean([psnr_uint8(f[m["leave"]], f[t]) for t in path]))
    return row, made


def colour_table(frames: list[np.ndarray], segs: list[np.ndarray], bins: int = COLOUR_BINS,
                 purity: float = 0.0) -> np.ndarray:
    """A colour -> label lookup (bins^3,) from labelled frames: each quantised RGB colour gets the label most of its
    pixels have (-1 where no pixel had that colour, or where that label has less than `purity` of them)."""
    q = np.concatenate([quantise(f, bins).reshape(-1) for f in frames])
    lab = np.concatenate([s.reshape(-1) for s in segs]).astype(np.int64)
    names, idx = np.unique(lab, return_inverse=True)
    votes = np.zeros((bins ** 3, len(names)), np.int64)
    np.add.at(votes, (q, idx), 1)
    table = names[votes.argmax(1)]
    total = votes.sum(1)
    table[(total == 0) | (votes.max(1) < purity * total)] = -1
    return table


def quantise(frame: np.ndarray, bins: int = COLOUR_BINS) -> np.ndarray:
    """(H, W) index of each pixel's colour in a bins^3 RGB grid."""
    c = frame.astype(np.int64) * bins // 256
    return (c[..., 0] * bins + c[..., 1]) * bins + c[..., 2]


def centroid(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()]) if len(ys) >= 2 else None


def score_objects(sampler: WorldSampler, ep: dict[str, Any], steps: int, seed: int) -> tuple[dict[str, float],
                                                                                            np.ndarray]:
    """Where the objects (and, pushed, the puck) end up in the dream against the engine (see the module docstring)."""
    m, f, seg = ep["marks"], ep["frames"], ep["segmentation"]
    start, end = m["start"], m["end"]
    made = dreamed(sampler, ep, "start", steps, seed)
    table = colour_table([f[start], f[end]], [seg[start], seg[end]])
    dream_lab, engine_lab = table[quantise(made[end])], table[quantise(f[end])]
    ids = [ep["target"]] if ep["kind"] == "push" else [o["id"] for o in ep["objects"]]
    rows = []
    puck_label = ep.get("pusher_label")  # the puck's segmentation label (push episodes name it)
    for label in [*ids, *([puck_label] if ep["kind"] == "push" else [])]:
        truth, before = centroid(seg[end] == label), centroid(seg[start] == label)
        if truth is None or before is None:
            continue
        own, said = seg[end] == label, engine_lab == label
        if (own & said).sum() < TRACKABLE * max(own.sum(), said.sum()):
            continue  # its colours are shared with other things: the tracker cannot follow it
        moved = float(np.linalg.norm(truth - before))
        if label != puck_label and moved <= 1.5:
            continue  # the drop probe scores what moved
        got, ceiling = centroid(dream_lab == label), centroid(said)
        rows.append({"label": int(label), "copy_last_px": moved,
                     "model_px": float(np.linalg.norm(got - truth)) if got is not None else float("nan"),
                     "ceiling_px": float(np.linalg.norm(ceiling - truth)) if ceiling is not None else float("nan")})
    objs = [r for r in rows if r["label"] != puck_label]
    puck = [r for r in rows if r["label"] == puck_label]
    found = [r for r in objs if np.isfinite(r["model_px"])]
    row = {"objects": float(len(objs)), "lost": float(len(objs) - len(found)),
           "closer": float(sum(r["model_px"] + CLOSER < r["copy_last_px"] for r in found)),
           "model_px_sum": float(sum(r["model_px"] for r in found)),
           "copy_last_px_sum": float(sum(r["copy_last_px"] for r in found)),
           "ceiling_px_sum": float(sum(r["ceiling_px"] for r in found if np.isfinite(r["ceiling_px"]))),
           "end_model_psnr": psnr_uint8(made[end], f[end]), "end_copy_last_psnr": psnr_uint8(f[start], f[end])}
    if puck:
        row.update({"pusher_model_px": puck[0]["model_px"], "pusher_copy_last_px": puck[0]["copy_last_px"]})
    return row, made


def colour_shares(frames: np.ndarray, table: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) the share of the frames' pixels whose colour the table gives each label (0 .. n)."""
    lab = table[quantise(np.asarray(frames))]
    return np.bincount(lab[lab >= 0], minlength=n + 1)[: n + 1] / lab.size


def score_colours(sampler: WorldSampler, scenes: list[dict[str, Any]], reference: list[dict[str, Any]],
                  names: list[str], steps: int, seed: int) -> dict[str, Any]:
    """Text control of colour (physics): each scene's prompt names one colour for all its objects; a text-to-video
    sample of it (the model's window, zero actions) is read by a colour table built from the `reference` scenes'
    labelled engine frames (other seeds; only colours that are one label's COLOUR_PURITY of the time). A sample
    shows the colour whose pixel share is most above that colour's mean share over all samples; the accuracy is how
    often that is the colour named (chance 1 / colours), beside the same reading of the engine's own frames of the
    scene (the ceiling). Colours the table cannot tell from the scenery (no pure colour bin) are left out."""
    table = colour_table([f for r in reference for f in r["frames"]], [x for r in reference for x in r["labels"]],
                         purity=COLOUR_PURITY)
    usable = [i + 1 for i in range(len(names)) if (table == i + 1).any()]
    scenes = [sc for sc in scenes if names.index(sc["colour"]) + 1 in usable]
    made = [sampler.t2v(sc["prompt"], frames=sampler.frames, steps=steps, seed=seed + i)
            for i, sc in enumerate(scenes)]
    out: dict[str, Any] = {"colours": [names[i - 1] for i in usable], "samples": len(scenes),
                           "chance": round(1 / len(usable), 3) if usable else None}
    for key, videos in (("model", made), ("engine", [sc["frames"] for sc in scenes])):
        shares = np.stack([colour_shares(v, table, len(names))[usable] for v in videos]) if videos else None
        if shares is None:
            continue
        named = np.array([usable.index(names.index(sc["colour"]) + 1) for sc in scenes])
        picked = (shares - shares.mean(0)).argmax(1)
        asked = shares[np.arange(len(scenes)), named]
        other = [shares[named != j, j].mean() for j in named if (named != j).any()]
        out[key] = {"accuracy": round(float((picked == named).mean()), 3),
                    "named_share": round(float(asked.mean()), 4),
                    "unnamed_share": round(float(np.mean(other)), 4) if other else None}
    return {**out, "_videos": made, "_scenes": scenes}  # the scenes scored (usable colours), their samples


def summarize(kind: str, rows: list[dict[str, float]], skipped: int) -> dict[str, Any]:
    """Means over the scored episodes (masked MSEs as masked PSNRs of the mean), shares, counts."""
    if not rows:
        return {"episodes": 0, "skipped": skipped}
    out: dict[str, Any] = {"episodes": len(rows), "skipped": skipped}
    if kind in ("drop", "push"):
        return {**out, **_summarize_objects(rows)}
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    if kind == "orbit":
        out.update({k: round(mean[k], 2) for k in ("path_model_psnr", "path_copy_last_psnr")})
    if kind in ("revisit", "orbit"):
        out.update({k: round(mean[k], 2) for k in ("far_model_psnr", "far_copy_last_psnr", "return_model_psnr",
                                                   "return_engine_psnr")})
        out["far_beats_copy_last"] = round(float(np.mean([r["far_model_psnr"] > r["far_copy_last_psnr"]
                                                          for r in rows])), 3)
        out["return_at_least_20db"] = round(float(np.mean([r["return_model_psnr"] >= 20 for r in rows])), 3)
    else:
        out.update({
            "changed_pixels": round(mean["changed_pixels"], 3),
            "persist_kept": round(mean["persist_kept"], 3),
            "persist_psnr_to_changed": round(float(psnr_of_mse(mean["persist_mse_to_changed"])), 2),
            "persist_psnr_to_unchanged": round(float(psnr_of_mse(mean["persist_mse_to_unchanged"])), 2),
            "interact_drawn": round(mean["interact_drawn"], 3),
            "interact_psnr_to_changed": round(float(psnr_of_mse(mean["interact_mse_to_changed"])), 2),
            "interact_psnr_to_unchanged": round(float(psnr_of_mse(mean["interact_mse_to_unchanged"])), 2),
            "return_model_psnr": round(mean["return_model_psnr"], 2),
            "far_model_psnr": round(mean["far_model_psnr"], 2),
            "far_copy_last_psnr": round(mean["far_copy_last_psnr"], 2)})
    return out


def _summarize_objects(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Object outcomes pooled over episodes: mean centroid errors (px) over the objects the dream kept, shares."""
    total = sum(r["objects"] for r in rows)
    found = total - sum(r["lost"] for r in rows)
    out: dict[str, Any] = {"objects": int(total), "lost": round(1 - found / total, 3) if total else None}
    if found:
        for key in ("model_px", "copy_last_px", "ceiling_px"):
            out[key] = round(sum(r[f"{key}_sum"] for r in rows) / found, 2)
        out["closer_than_copy_last"] = round(sum(r["closer"] for r in rows) / total, 3)
    for key in ("end_model_psnr", "end_copy_last_psnr"):
        out[key] = round(float(np.mean([r[key] for r in rows])), 2)
    puck = [r for r in rows if "pusher_model_px" in r]
    if puck:
        kept = [r for r in puck if np.isfinite(r["pusher_model_px"])]
        out["pusher_lost"] = round(1 - len(kept) / len(puck), 3)
        if kept:
            out["pusher_model_px"] = round(float(np.mean([r["pusher_model_px"] for r in kept])), 2)
            out["pusher_copy_last_px"] = round(float(np.mean([r["pusher_copy_last_px"] for r in kept])), 2)
    return out


def strip(rows: list[tuple[str, np.ndarray]], marks: list[tuple[str, int]], scale: int = 2) -> np.ndarray:
    """A picture: one row per (label, frames), one column per (label, frame index), with text labels."""
    from PIL import Image, ImageDraw

    h, w = rows[0][1].shape[1:3]
    cw, ch, left, top = w * scale, h * scale, 150, 18
    img = Image.new("RGB", (left + len(marks) * (cw + 4), top + len(rows) * (ch + 4)), (20, 20, 20))
    draw = ImageDraw.Draw(img)
    for j, (name, _) in enumerate(marks):
        draw.text((left + j * (cw + 4) + 2, 3), name, fill=(230, 230, 230))
    for i, (label, frames) in enumerate(rows):
        draw.text((4, top + i * (ch + 4) + ch // 2 - 6), label, fill=(230, 230, 230))
        for j, (_, t) in enumerate(marks):
            big = np.repeat(np.repeat(frames[t], scale, axis=0), scale, axis=1)
            img.paste(Image.fromarray(big), (left + j * (cw + 4), top + i * (ch + 4)))
    return np.asarray(img)
