"""worldsim probe: does the world model simulate what the engine does? Scripted episodes with ground truth.

Each probe kind is a scripted episode of the voxel engine (datagen/probes.py): a warm-up of explorer steps (the
context), then a script. The model is dreamed from the engine's frames under the same actions and scored against
the engine (ceiling) and copying the last real frame (floor):
- revisit: look 180 degrees away and back, standing still. Far point: dream vs engine beside copy-last; return:
  dream vs the frame before leaving (the engine: same view), share at 20 dB or more.
- interaction: break the block in front, then look away and back. persist: dreamed from just after the break, is
  the hole still there on return (within the pixels the break changed, nearer the engine's frame than the intact
  block's)? interact: dreamed from before the attack, does the model draw the hole itself?
Episodes whose script did not do what it meant (no block in reach, player slid or fell) are skipped and counted.
Writes OUT/probe.json, OUT/report.md and frame strips OUT/frames/<kind>_<seed>.png (engine and dream rows at the
marked moments).

examples:
  worldsim probe ckpt=runs/recipe/dit out=runs/probe
  worldsim probe ckpt=runs/recipe/dit kinds=[interaction] episodes=32 steps=8
"""

from __future__ import annotations

import json
from pathlib import Path

from worldsim.errors import InputError


def main(raw) -> int:
    import torch
    from PIL import Image
    from tqdm import tqdm

    from datagen.probes import KINDS, voxel_probe
    from envs.voxel.actions import FLAT_KEYS
    from worldsim.eval import sim_probes as P
    from worldsim.model.sampler import WorldSampler

    kinds = [str(k) for k in raw.kinds]
    if not kinds or any(k not in KINDS for k in kinds):
        raise InputError(f"kinds must be a non-empty list of {list(KINDS)}, got {kinds}")
    if raw.episodes < 1 or raw.pictures < 0:
        raise InputError("episodes must be >= 1 and pictures >= 0")
    s = WorldSampler.load(str(raw.ckpt), str(raw.device), decoder="auto")
    if list(s.meta.get("action_spec", {}).get("flat_keys", [])) != list(FLAT_KEYS):
        raise InputError(f"{raw.ckpt} was not trained on the voxel engine's actions; the probes script that engine")
    steps = int(raw.steps) if raw.steps else s.dream_steps
    out = Path(str(raw.out))
    (out / "frames").mkdir(parents=True, exist_ok=True)
    result = {"checkpoint": {"path": str(raw.ckpt), "digest": s.digest, "step": s.meta.get("step")},
              "steps": steps, "decoder": s.decoder_name, "seed": int(raw.seed), "probes": {}}
    bar = tqdm(total=len(kinds) * int(raw.episodes), desc="probe", unit="episode")
    with torch.no_grad():
        for kind in kinds:
            rows, skipped, drawn = [], 0, 0
            for i in range(int(raw.episodes)):
                seed = int(raw.seed) + i
                ep = voxel_probe(kind, seed, width=s.width, height=s.height, warmup=s.frames - s.k)
                bar.update()
                if not ep["ok"]:
                    skipped += 1
                    continue
                m = ep["marks"]
                if kind == "revisit":
                    row, made = P.score_revisit(s, ep, steps, seed)
                    pics = [("engine", ep["frames"]), ("dream", made)]
                    cols = [("last real (leave)", m["leave"]), ("far", m["far"]), ("back", m["back"])]
                else:
                    row, made = P.score_interaction(s, ep, steps, seed)
                    pics = [("engine", ep["frames"]), ("dream from before", made["before"]),
                            ("dream from after", made["after"])]
                    cols = [("before attack", m["before"]), ("broken", m["broken"]), ("far", m["far"]),
                            ("back", m["back"])]
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


def report(result: dict) -> str:
    lines = ["# worldsim probe report", "", f"checkpoint {result['checkpoint']['path']} (step "
             f"{result['checkpoint']['step']}, {result['checkpoint']['digest'][:12]}), {result['steps']} Euler "
             f"step(s), decoder {result['decoder']}", "", "| probe | measure | model | reference |",
             "|---|---|---|---|"]
    rev = result["probes"].get("revisit")
    if rev and rev["episodes"]:
        n = f"n={rev['episodes']} ({rev['skipped']} skipped)"
        lines += [f"| revisit | far point PSNR (dB) | {rev['far_model_psnr']:.2f} | copy-last "
                  f"{rev['far_copy_last_psnr']:.2f}; beats it in {100 * rev['far_beats_copy_last']:.0f}%; {n} |",
                  f"| revisit | return PSNR vs frame before leaving (dB) | {rev['return_model_psnr']:.2f} | engine "
                  f"{rev['return_engine_psnr']:.2f}; >= 20 dB in {100 * rev['return_at_least_20db']:.0f}% |"]
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
    for kind, res in result["probes"].items():
        if not res["episodes"]:
            lines.append(f"| {kind} | skipped | all {res['skipped']} scripted episodes failed their script | |")
    return "\n".join(lines) + "\n"
