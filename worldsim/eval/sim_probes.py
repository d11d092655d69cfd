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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.eval.metrics import dream_after, psnr_uint8, revisit_psnrs
from worldsim.model.frames import psnr_of_mse
from worldsim.model.sampler import WorldSampler


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


def summarize(kind: str, rows: list[dict[str, float]], skipped: int) -> dict[str, Any]:
    """Means over the scored episodes (masked MSEs as masked PSNRs of the mean), shares, counts."""
    if not rows:
        return {"episodes": 0, "skipped": skipped}
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out: dict[str, Any] = {"episodes": len(rows), "skipped": skipped}
    if kind == "revisit":
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
