"""worldsim eval: score a trained world model on a held-out store (docs/architecture.md section 5).

Metrics, all on episodes of seeds never used in training:
  next frame      teacher-forced: real context (window minus one latent frame), real action, one generated frame;
                  PSNR and SSIM beside the VAE-reconstruction ceiling and copying the last context frame
                  (render=carry, the default: dreamed pixels carried from the previous frame through the model's
                  warp where it kept them, the latents decoded alone reported beside; render=latent: decode only)
  rollout         autoregressive from a real starting context under the recorded actions: PSNR/SSIM at horizons
                  1, 8, 16, 32 (horizons longer than an episode are skipped and counted)
  dPSNR           Genie's controllability: PSNR(recorded-action rollout) - PSNR(random-action rollout)
  IDM             an inverse-dynamics model trained on the training stores labels the rollouts: per-key F1
                  (buttons), accuracy (other discrete keys), mean absolute error (camera); its real-frame score
  text adherence  attribute classifiers (biome, time of day, scene) trained on engine frames score t2v samples
  revisit         look away (>= 150 degrees) and back within 12 steps: at the far point the dream against the
                  engine's frame beside copy-last (it turned), on return against the frame before leaving (it
                  remembered); from the look-away excursions of revisit_store (default: the held-out store)
Writes OUT/eval.json (numbers, checkpoint and store digests, config), OUT/report.md, OUT/psnr_vs_horizon.png and
OUT/videos/episode_<i>.mp4 (engine | model side by side); the probes are cached in OUT/idm/ and reused. Same
ckpt, store and seed give the same numbers.

examples:
  worldsim eval ckpt=runs/dit64 store=data/voxel64-heldout out=runs/eval64
  worldsim eval ckpt=runs/dit64 store=data/voxel64-heldout episodes=4 horizons=[1,8] idm_steps=0 attr_steps=0
  worldsim eval ckpt=runs/dit64/checkpoints/step_0002000 store=data/heldout train_store=data/voxel64 seed=1
  worldsim generate policy=lookback episodes=4 seed=2000 out=data/lookback     # a store full of revisits, then
  worldsim eval ckpt=runs/dit64 store=data/voxel64-heldout revisit_store=data/lookback
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import ListConfig

from worldsim.cli import build
from worldsim.errors import InputError


@dataclass
class EvalConfig:
    ckpt: str = "???"
    store: str | None = None
    out: str = "outputs/eval"
    seed: int = 0
    steps: int = 8
    device: str = "cpu"
    windows: int = 256
    episodes: int = 8
    horizons: list[int] = field(default_factory=lambda: [1, 8, 16, 32])
    videos: int = 4
    train_store: Any = None  # a path or a list of paths
    idm_steps: int = 300
    attr_steps: int = 300
    t2v_samples: int = 8
    probe_size: int = 64
    probe_pairs: int = 4096
    probe_batch: int = 64
    revisit_store: str | None = None  # look-away-and-back excursions (default: the held-out store)
    revisits: int = 16  # at most this many excursions scored (0: skip the revisit metric)
    detector: str | None = None  # a run of worldsim train-detector: its AUC on the rollouts (realism; 0.5 = best)
    render: str = "carry"  # carry: pixel carry where the model can (worldsim/model/render.py); latent: decode only


def _check(cfg: EvalConfig) -> None:
    from worldsim.cli.common_train import positive
    from worldsim.model.render import check_render

    positive(cfg, "steps", "windows", "episodes", "probe_size", "probe_pairs", "probe_batch")
    check_render(cfg.render)
    if not cfg.horizons or any(int(h) < 1 for h in cfg.horizons):
        raise InputError(f"horizons must be a non-empty list of positive frame counts, got {cfg.horizons}")
    for name in ("videos", "idm_steps", "attr_steps", "t2v_samples", "revisits"):
        if getattr(cfg, name) < 0:
            raise InputError(f"{name} must be >= 0, got {getattr(cfg, name)}")


def training_stores(cfg: EvalConfig, meta: dict[str, Any]) -> tuple[list[str], int, str | None]:
    """(urls, held-out episodes per store, why the probes cannot train) for the probes' training frames."""
    from store import StoreError, open_store
    from worldsim.cli.common_train import as_list

    if cfg.train_store:
        urls = as_list(cfg.train_store, "train_store")
        for u in urls:
            if "latents" in open_store(u).attrs:
                raise StoreError(f"train_store {u} holds VAE latents; the probes need frames: pass the frame store")
        return urls, 0, None
    held = meta.get("heldout", {})
    urls = list(held.get("stores") or [s["url"] for s in meta.get("stores", [])])
    missing = [u for u in urls if not Path(u).exists() and "://" not in u]
    if not urls or missing:
        return urls, 0, (f"the checkpoint's training stores {missing or urls} are not here; pass train_store=PATH "
                         f"(frames of the same game, not the held-out store)")
    if any("latents" in open_store(u).attrs for u in urls):
        return urls, 0, (f"the checkpoint was trained on latent stores {urls}; pass train_store=PATH (their frame "
                         f"stores) for the probes")
    return urls, int(held.get("val_episodes", 0)), None


def run_probes(cfg: EvalConfig, s: Any, urls: list[str], val_episodes: int, rolls: list[dict[str, Any]],
               tick: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The IDM and text-adherence results (each {"skipped": why} when it cannot run), probes cached in OUT/idm."""
    import functools

    from store import open_store
    from worldsim.eval import probes as P

    digests = [str(open_store(u).attrs.get("digest", "")) for u in urls]
    known = {st.get("digest") for st in s.meta.get("stores", [])}
    if set(digests) - known:  # still useful (same game), but not the exact data the model saw: say so
        print(f"worldsim eval: note: probe training stores {urls} are not the checkpoint's training data "
              f"(digests differ)", file=sys.stderr)
    key = {"stores": digests, "val_episodes": val_episodes, "action_spec": s.meta.get("action_spec")}
    data = functools.cache(lambda: P.load_windows(urls, "train", val_episodes, cfg.probe_pairs, cfg.probe_size,
                                                  cfg.seed))  # read only when a probe is not cached
    stores = {"train_stores": [{"url": u, "digest": d, "in_checkpoint": d in known} for u, d in zip(urls, digests)]}
    idm = _idm_metric(cfg, s, key, data, rolls) if cfg.idm_steps else {"skipped": "idm_steps=0"}
    tick()
    text = _text_metric(cfg, s, urls, key, data, tick) if cfg.attr_steps else {"skipped": "attr_steps=0"}
    tick()
    return {**idm, **stores}, {**text, **stores}


def _probe_cfg(cfg: EvalConfig, steps: int) -> Any:
    from worldsim.eval.probes import ProbeConfig

    return ProbeConfig(steps=steps, batch_size=cfg.probe_batch, size=cfg.probe_size, pairs=cfg.probe_pairs,
                       seed=cfg.seed)


def _idm_metric(cfg: EvalConfig, s: Any, key: dict[str, Any], data: Any, rolls: list[dict[str, Any]]
                ) -> dict[str, Any]:
    from worldsim.eval import probes as P

    pc = _probe_cfg(cfg, cfg.idm_steps)

    def make() -> tuple[Any, dict[str, Any]]:
        idm, loss = P.train_idm(data(), s.meta.get("action_spec", {}), pc)
        return idm, {"columns": idm.columns, "scale": idm.scale, "pos_weight": idm.pos_weight.tolist(),
                     "width": idm.width, "loss": loss, "pairs": len(data()["actions"])}

    def rebuild(i: dict[str, Any]) -> Any:
        return P.InverseDynamics([tuple(c) for c in i["columns"]], i["scale"], i["pos_weight"], i["width"])

    idm, info, hit = P.cached(Path(cfg.out) / "idm", "idm", {**key, "probe": asdict(pc)}, make, rebuild)
    return {**P.idm_scores(idm, rolls, cfg.probe_size), "train_loss": info["loss"], "train_pairs": info["pairs"],
            "cached": hit}


def _text_metric(cfg: EvalConfig, s: Any, urls: list[str], key: dict[str, Any], data: Any, tick: Any
                 ) -> dict[str, Any]:
    from worldsim.eval import probes as P
    from worldsim.train.data import StoreSet

    train_prompts = [p for r in StoreSet(urls, 1, "all").readers for p in r.prompts()]
    held_prompts = StoreSet([str(cfg.store)], 1, "all").readers[0].prompts()
    attributes = P.usable_attributes(train_prompts)
    if not attributes:
        return {"skipped": "no captioned attribute (biome, time_of_day, scene) has 2 or more values in the "
                           "training stores' prompts"}
    pc = _probe_cfg(cfg, cfg.attr_steps)

    def make() -> tuple[Any, dict[str, Any]]:
        clf, loss = P.train_attributes(data(), attributes, pc)
        return clf, {"attributes": attributes, "width": clf.width, "loss": loss}

    clf, info, hit = P.cached(Path(cfg.out) / "idm", "attributes", {**key, "attributes": attributes,
                              "probe": asdict(pc)}, make, lambda i: P.AttributeClassifier(i["attributes"], i["width"]))
    real = P.real_accuracy(clf, P.load_windows([str(cfg.store)], "all", 0, min(cfg.probe_pairs, 1024),
                                               cfg.probe_size, cfg.seed + 1))
    tok = s.model.tokenizer
    prompts = P.pick_prompts(held_prompts + train_prompts, attributes, cfg.t2v_samples,
                             lambda p: tok is None or tok.known(p) > 0)
    text = P.text_adherence(s, clf, prompts, cfg.probe_size, cfg.steps, cfg.seed, tick)
    for a, row in text["attributes"].items():
        row.update(real_accuracy=real[a]["accuracy"], real_frames=real[a]["frames"])
    return {**text, "train_loss": info["loss"], "cached": hit}


def _parse(raw) -> EvalConfig:
    node = dict(raw)
    h = raw.horizons
    try:
        node["horizons"] = [int(v) for v in (h if isinstance(h, ListConfig | list | tuple) else [h] if h else [])]
    except (TypeError, ValueError):
        raise InputError(f"horizons must be a list of frame counts such as horizons=[1,8,16,32], got {h}") from None
    cfg = build(EvalConfig, node, "eval config")
    _check(cfg)
    return cfg


def _measure(cfg: EvalConfig, s: Any, held: dict[str, Any], episodes: list[tuple[int, int]]
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every metric, with one progress bar: (the results by metric, the rollouts for the videos)."""
    from tqdm import tqdm

    from worldsim.eval import metrics as E
    from worldsim.train.data import StoreSet

    horizons = sorted(set(cfg.horizons))
    urls, val_episodes, no_probes = training_stores(cfg, s.meta)
    windows = StoreSet([held["url"]], s.frames, "all")
    total = (len(windows.spread(cfg.windows)) + 2 * len(episodes) + 2 + (cfg.t2v_samples if cfg.attr_steps else 0)
             + cfg.revisits)
    bar = tqdm(total=total, desc="eval", unit="item")
    tick = bar.update
    bar.set_description("eval: next frame")
    results = {"next_frame": E.next_frame_metrics(s, windows, cfg.windows, cfg.steps, cfg.seed, tick)}
    bar.set_description("eval: rollouts")
    rolls = E.rollouts(s, held["url"], episodes, horizons, cfg.steps, cfg.seed, tick)
    results["rollout"] = E.horizon_metrics(rolls, horizons)
    if cfg.detector:
        from worldsim.eval.detector import load_detector, realism

        results["detector"] = realism(load_detector(cfg.detector), rolls)
    bar.set_description("eval: revisit")
    results["revisit"] = (E.revisit_metrics(s, str(cfg.revisit_store or held["url"]), cfg.steps, cfg.seed,
                                            cfg.revisits, tick) if cfg.revisits else {"skipped": "revisits=0"})
    bar.set_description("eval: probes")
    if no_probes:
        results["idm"], results["text_adherence"] = {"skipped": no_probes}, {"skipped": no_probes}
    else:
        results["idm"], results["text_adherence"] = run_probes(cfg, s, urls, val_episodes, rolls, tick)
    bar.update(max(0, bar.total - bar.n))  # work that turned out to be skipped (no usable attribute, ...)
    bar.close()
    return results, rolls


def main(raw) -> int:
    import torch

    from worldsim.eval import metrics as E
    from worldsim.eval import report as R
    from worldsim.model import checkpoint as C
    from worldsim.model.sampler import WorldSampler

    cfg = _parse(raw)
    s = WorldSampler.load(cfg.ckpt, cfg.device)
    s.render = cfg.render
    held = E.check_store(s, str(cfg.store) if cfg.store else "")
    trained_on = held["digest"] in {st.get("digest") for st in s.meta.get("stores", [])}
    if trained_on:  # allowed (e.g. to measure overfitting) but not a held-out score
        print(f"worldsim eval: note: {held['url']} is one of the checkpoint's training stores; its numbers are "
              f"not held-out numbers", file=sys.stderr)
    episodes = E.pick_episodes(held["episodes"], cfg.episodes)
    with torch.no_grad():
        results, rolls = _measure(cfg, s, held, episodes)
    ck = C.resolve(cfg.ckpt)
    result = {"checkpoint": {"path": str(ck), "digest": s.digest, "step": s.meta.get("step"),
                             "training_stores": [st.get("digest") for st in s.meta.get("stores", [])]},
              "store": {"url": held["url"], "digest": held["digest"], "episodes": [i for i, _ in episodes],
                        "in_training": trained_on},
              "config": asdict(cfg), **results}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=1, sort_keys=True))  # first: nothing computed is lost
    R.plot_horizons(result["rollout"], out / "psnr_vs_horizon.png")
    videos = R.write_videos(s, rolls[: cfg.videos], out / "videos", seed=cfg.seed)
    table = R.table(result)
    R.write_report(out / "report.md", result, table, [v.relative_to(out) for v in videos])
    print(table)
    print(f"outputs: {out} (eval.json, report.md, psnr_vs_horizon.png, videos/)")
    return 0
