"""What `worldsim eval` writes besides eval.json: the table, report.md, the PSNR-against-horizon plot and the
side-by-side videos (engine | model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from worldsim.model.sampler import WorldSampler
from worldsim.provenance import COMPOSITE

MEANINGS = [
    ("next frame", "teacher forced: real context (the window minus one latent frame), real action, one generated "
                   "frame; PSNR = 10 log10(255^2/MSE), SSIM with an 11x11 gaussian window (sigma 1.5)"),
    ("VAE ceiling", "the VAE's reconstruction of the same target frames: the best the model can do"),
    ("copy last", "repeating the last real frame: what a model that ignores dynamics scores"),
    ("rollout @h", "autoregressive from the real starting context under the recorded actions, the h-th new frame"),
    ("dPSNR @h", "PSNR with the recorded actions minus PSNR with random actions (Genie): > 0 means the actions "
                 "steer the model"),
    ("stripes", "over every rolled-out frame, each frame's row (column) luma profile minus its smoothing, its power "
                "spectrum averaged: the strongest frequency's power over its neighbours', and its period; scenes "
                "score 1-4, horizontal (vertical) stripes repeating at any period stand out far above"),
    ("revisit", "look away (>= 150 degrees) and back within 12 steps, standing still: 'far' scores the dream against "
                "the engine at the furthest point beside copying the frame before leaving (it really turned); "
                "'return' scores the dream's frame on return against the frame before leaving (it remembered; "
                "the engine's own return frame is the ceiling)"),
    ("IDM", "an inverse-dynamics model trained on the training stores labels the generated frames: F1 per button, "
            "accuracy for other discrete keys, mean absolute error for continuous columns; 'real' is its score "
            "on the real held-out frames (its ceiling)"),
    ("text adherence", "attribute classifiers trained on engine frames score text-to-video samples from prompts "
                       "naming the attribute; 'real' is their accuracy on real held-out frames"),
]


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """The headline numbers as a plain-text (and Markdown) table."""
    nf, ro = result["next_frame"], result["rollout"]
    rows = [("metric", "model", "reference"), ("---", "---", "---"),
            ("next-frame PSNR (dB)", _f(nf["next_frame_psnr"]),
             f"VAE {_f(nf['vae_reconstruction_psnr'])}, copy-last {_f(nf['copy_last_frame_psnr'])}"),
            ("next-frame SSIM", _f(nf["next_frame_ssim"], 3),
             f"VAE {_f(nf['vae_reconstruction_ssim'], 3)}, copy-last {_f(nf['copy_last_frame_ssim'], 3)}")]
    if "latent_decoded_psnr" in nf:  # rendered with pixel carry: what the latents alone give
        rows.append(("next-frame PSNR / SSIM, latents decoded", f"{_f(nf['latent_decoded_psnr'])} / "
                     f"{_f(nf['latent_decoded_ssim'], 3)}", "the model's latents through the VAE, no pixel carry"))
    for h, row in sorted(ro["horizons"].items(), key=lambda kv: int(kv[0])):  # eval.json sorts keys as text
        skipped = ro["skipped"][h]
        if row is None:
            rows.append((f"rollout @{h}", "skipped", f"all {skipped} episodes shorter"))
            continue
        note = f", {skipped} episode(s) too short" if skipped else ""
        rows.append((f"rollout PSNR / SSIM @{h}", f"{_f(row['model_psnr'])} / {_f(row['model_ssim'], 3)}",
                     f"copy-last {_f(row['copy_last_psnr'])} / {_f(row['copy_last_ssim'], 3)}, "
                     f"random actions {_f(row['random_psnr'])}; n={row['episodes']}{note}"))
        rows.append((f"dPSNR @{h} (dB)", _f(row["dpsnr"]), ""))
        if "detail_ratio" in row:  # eval.json files written before it have none
            rows.append((f"detail @{h} (generated / engine)", _f(row["detail_ratio"]),
                         "fine detail (neighbouring-pixel differences) against the engine's frames; 1 = as sharp"))
    st = ro.get("stripes") or {}  # eval.json files written before it have none
    if st.get("model") and st.get("engine"):
        m, e = st["model"], st["engine"]
        rows.append(("stripes: strongest periodic peak, rows / columns",
                     f"{_f(m['rows']['peak'], 1)} at {_f(m['rows']['period'], 1)} px / "
                     f"{_f(m['cols']['peak'], 1)} at {_f(m['cols']['period'], 1)} px",
                     f"engine {_f(e['rows']['peak'], 1)} / {_f(e['cols']['peak'], 1)}; a stripe pattern of any "
                     "period stands far above the engine's own edges"))
    rev = result.get("revisit", {"skipped": "not measured"})
    if "skipped" in rev:
        rows.append(("revisit", "skipped", rev["skipped"]))
    else:
        rows.append(("revisit: far point PSNR (dB)", _f(rev["far_model_psnr"]),
                     f"copy-last {_f(rev['far_copy_last_psnr'])}; beats it in "
                     f"{_f(100 * rev['far_beats_copy_last'], 0)}% of {rev['excursions']}"))
        rows.append(("revisit: return PSNR vs frame before leaving (dB)", _f(rev["return_model_psnr"]),
                     f"engine {_f(rev['return_engine_psnr'])}; >= 20 dB in "
                     f"{_f(100 * rev['return_at_least_20db'], 0)}%; context {rev['context_frames']} frames, "
                     f"excursions up to {rev['longest_excursion']} steps"))
    idm = result["idm"]
    if "skipped" in idm:
        rows.append(("IDM", "skipped", idm["skipped"]))
    else:
        g, r = idm["generated"], idm["real"]
        for name, field, d in (("IDM button F1 (mean)", "binary_f1_mean", 3),
                               ("IDM discrete accuracy", "discrete_accuracy_mean", 3),
                               ("IDM continuous MAE", "continuous_mae_mean", 2)):
            if g[field] is not None or r[field] is not None:
                rows.append((name, _f(g[field], d), f"real {_f(r[field], d)}, random actions "
                                                    f"{_f(idm['random'][field], d)}"))
    text = result["text_adherence"]
    if "skipped" in text:
        rows.append(("text adherence", "skipped", text["skipped"]))
    else:
        for a, row in text["attributes"].items():
            rows.append((f"text adherence: {a}", _f(row["accuracy"], 3),
                         f"real {_f(row['real_accuracy'], 3)}, chance {_f(row['chance'], 3)}, n={row['samples']}"))
    det = result.get("detector")
    if det and "skipped" in det:
        rows.append(("detector AUC (realism)", "skipped", det["skipped"]))
    elif det:
        rows.append(("detector AUC (realism; 0.5 = indistinguishable)", _f(det["auc"], 3),
                     f"model clips flagged {_f(100 * det['flagged'], 0)}%, engine clips "
                     f"{_f(100 * det['engine_flagged'], 0)}%; n={det['clips']}"))
    return "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)


def write_report(path: Path, result: dict[str, Any], table_md: str, videos: list[Path]) -> Path:
    ck, st = result["checkpoint"], result["store"]
    lines = ["# worldsim eval", "",
             f"- checkpoint: `{ck['path']}` (step {ck['step']}, digest `{ck['digest'][:16]}`)",
             f"- held-out store: `{st['url']}` (digest `{str(st['digest'])[:16]}`), episodes {st['episodes']}",
             f"- seed {result['config']['seed']}, {result['config']['steps']} sampling steps", "", table_md, "",
             "## What the metrics mean", ""]
    lines += [f"- **{name}**: {text}" for name, text in MEANINGS]
    lines += ["", "## Plot and videos", "", "![PSNR against horizon](psnr_vs_horizon.png)", ""]
    lines += [f"- [{v.name}]({v.as_posix()}) (engine left, model right)" for v in videos]
    lines += ["", "All numbers, the config and the digests are in [eval.json](eval.json).", ""]
    path.write_text("\n".join(lines))
    return path


def plot_horizons(rollout: dict[str, Any], path: Path) -> Path:
    """PSNR of the model (recorded and random actions) and of copy-last against horizon, and dPSNR beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    got = sorted(((int(h), r) for h, r in rollout["horizons"].items() if r is not None), key=lambda hr: hr[0])
    hs = [h for h, _ in got]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (("model_psnr", "model (recorded actions)", "o-"),
                              ("random_psnr", "model (random actions)", "s--"), ("copy_last_psnr", "copy last frame",
                                                                                  "^:")):
        ax.plot(hs, [r[key] for _, r in got], style, label=label)
    ax.set(xlabel="horizon (frames)", ylabel="PSNR (dB)", title="rollout PSNR")
    ax.legend()
    ax2.plot(hs, [r["dpsnr"] for _, r in got], "o-", color="tab:red")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set(xlabel="horizon (frames)", ylabel="dPSNR (dB)", title="controllability (recorded - random)")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        if hs:
            a.set_xticks(hs)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def side_by_side(real: np.ndarray, model: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) engine | 2 px white | model (F, H, W, 3) -> (F, H, 2W + 2, 3)."""
    gap = np.full((*real.shape[:2], 2, 3), 255, np.uint8)
    return np.concatenate([real, gap, model], axis=2)


def write_videos(sampler: WorldSampler, rolls: list[dict[str, Any]], folder: Path, seed: int) -> list[Path]:
    """OUT/videos/episode_<i>.mp4: the real context and continuation beside the same context and the rollout."""
    paths = []
    for r in rolls:
        c = r["context"]
        model = np.concatenate([r["real"][:c], r["model"]])
        p = sampler.write_video(side_by_side(r["real"], model), folder / f"episode_{r['index']}.mp4",
                                source=COMPOSITE, mode="eval rollout (engine | model)", episode=r["index"], seed=seed)
        paths.append(p)
    return paths
