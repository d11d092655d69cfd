"""worldsim detect VIDEO: score a video as engine-made or model-made, with a detector of worldsim train-detector.

The video is cut into clips of the detector's length (resized to its size); each gets P(model-made). A clip above
the detector's threshold (chosen so that 1% of held-out engine clips, after an MP4 round trip, are flagged) counts
as model-made. Prints per file: the verdict, the mean score and how many clips were flagged. The detector sees
pixels only: read the file's signed provenance with `worldsim provenance` for what it was made from.

examples:
  worldsim detect outputs/sample.mp4 ckpt=outputs/detector
  worldsim detect path=[a.mp4,b.mp4] ckpt=outputs/detector json=true
"""

from __future__ import annotations

import json

from omegaconf import ListConfig


def main(raw) -> int:
    from worldsim.eval.detector import load_detector, read_clips

    det = load_detector(str(raw.ckpt))
    paths = list(raw.path) if isinstance(raw.path, ListConfig | list) else [raw.path]
    for p in paths:
        scores = det.score(read_clips(str(p), det.cfg.frames))
        flagged = int((scores > det.threshold).sum())
        verdict = "model-made" if flagged * 2 > len(scores) else "engine-made"
        row = {"path": str(p), "verdict": verdict, "mean_score": round(float(scores.mean()), 4),
               "clips": int(len(scores)), "flagged": flagged, "threshold": round(det.threshold, 4),
               "scores": [round(float(s), 4) for s in scores]}
        if raw.json:
            print(json.dumps(row))
        else:
            print(f"{p}: {verdict} ({flagged}/{len(scores)} clips above the 1%-false-positive threshold; mean "
                  f"P(model-made) {row['mean_score']:.3f})")
    return 0
