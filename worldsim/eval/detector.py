"""A detector of generated video: engine-made or model-made, per clip (`worldsim train-detector`, `worldsim detect`).

    result = train_detector(DetectorConfig(real=["data/voxel64"], models=["runs/a", "runs/b"], unseen=["runs/c"]))
    det = load_detector("runs/detector")
    scores = det.score(clips)          # (N, T, H, W, 3) uint8 -> P(model-made) per clip

Training data (all seeded):
- engine clips: windows of `frames` frames from the `real` stores (rendered by the engines);
- model clips: from each checkpoint in `models`, `frames` frames it dreamed (DreamCore, its default sampler) after
  `context` real frames of a window of a `real` store of its game, under the window's recorded actions; only the
  dreamed frames form the clip.
Held out: the last quarter of each store's episodes (`heldout_share`) serves only the test clips, engine and model
alike, and the checkpoints in `unseen` serve only tests (a detector must also catch models it never saw). Each clip
is also stored after an MP4 round trip (libx264 at the quality worldsim writes), and training draws either, so
scores hold on the files `detect` reads.

The network is a small 3D conv net over the clip and its frame differences (what moves, how it blurs), with global
pooling. Reported: held-out ROC AUC, the true-positive rate and accuracy at a 1% false-positive rate (threshold:
the 99th percentile of held-out engine-clip scores), raw and after MP4, and the same per unseen checkpoint. Its
AUC against one model's rollouts is a realism score (0.5: indistinguishable from the engine) that `worldsim eval
detector=PATH` reports.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldsim.errors import InputError
from worldsim.eval.probes import resize
from worldsim.model import checkpoint as C
from worldsim.model.sampler import WorldSampler
from worldsim.train.data import StoreSet, verify_stores


@dataclass
class DetectorConfig:
    real: list[str] = field(default_factory=list)  # engine stores: engine clips, and the contexts of model clips
    models: list[str] = field(default_factory=list)  # world-model checkpoints whose clips train the detector
    unseen: list[str] = field(default_factory=list)  # checkpoints whose clips only test it
    out: str = "outputs/detector"
    frames: int = 8  # frames per clip
    context: int = 4  # real frames each model clip starts from (not part of the clip)
    clips: int = 96  # model clips per checkpoint and split share; engine clips: as many as all models' together
    size: int = 64  # clips are resized to size x size
    heldout_share: float = 0.25  # share of each store's episodes (the last ones) kept for testing
    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    width: int = 16  # channels of the first layer
    seed: int = 0
    device: str = "auto"


class DetectorNet(nn.Module):
    """(B, T, 3, S, S) in [-1, 1] -> (B,) logit of "model-made". The frames and their differences in time go through
    four 3D conv layers (space halved each time, time from the third), GroupNorm + SiLU, global average pooling."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [6, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            stride = (1 if i < 2 else 2, 2, 2)
            layers += [nn.Conv3d(a, b, 3, stride=stride, padding=1), nn.GroupNorm(min(8, b), b), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
        h = self.net(torch.cat([x, diff], dim=2).transpose(1, 2))  # (B, C, T, S, S)
        return self.head(h.mean(dim=(2, 3, 4)))[:, 0]


def to_input(clips: np.ndarray, size: int) -> torch.Tensor:
    """uint8 clips (N, T, H, W, 3) -> (N, T, 3, size, size) float in [-1, 1], resized as the other probes resize
    (`worldsim.eval.probes.resize`) when the size differs."""
    return resize(clips, size).float().div(127.5).sub(1)


def mp4_round_trip(clip: np.ndarray, fps: int = 20) -> np.ndarray:
    """A clip after writing it as worldsim writes MP4s (libx264, quality 8) and reading it back."""
    import tempfile

    import imageio.v2 as imageio

    with tempfile.TemporaryDirectory(prefix="worldsim-rt-") as tmp:
        buf = Path(tmp) / "clip.mp4"
        with imageio.get_writer(buf, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                ffmpeg_log_level="error") as w:
            for f in clip:
                w.append_data(np.asarray(f, np.uint8))
        with imageio.get_reader(buf) as r:
            out = np.stack([np.asarray(f) for f in r])
    return out[: len(clip)]


def roc_auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half): the ROC AUC."""
    neg, pos = np.asarray(neg, np.float64), np.asarray(pos, np.float64)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    allv = np.concatenate([neg, pos])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):  # average ranks of ties
        m = allv == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return float((ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2) / (len(neg) * len(pos)))


def at_fpr(neg: np.ndarray, pos: np.ndarray, threshold: float) -> dict[str, float]:
    """True-positive rate, false-positive rate and balanced accuracy of "score > threshold"."""
    tpr = float((np.asarray(pos) > threshold).mean()) if len(pos) else float("nan")
    fpr = float((np.asarray(neg) > threshold).mean()) if len(neg) else float("nan")
    return {"tpr": round(tpr, 4), "fpr": round(fpr, 4), "accuracy": round((tpr + 1 - fpr) / 2, 4)}


def threshold_for(neg: np.ndarray, fpr: float = 0.01) -> float:
    """The score above which at most `fpr` of the engine clips fall."""
    return float(np.quantile(np.asarray(neg, np.float64), 1 - fpr, method="higher"))


# -- clips ------------------------------------------------------------------------------------------------------------
def engine_clips(stores: StoreSet, count: int, frames: int, offset: int, seed: int) -> np.ndarray:
    """`count` clips of `frames` frames (starting `offset` frames into windows) spread over the stores' windows."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(stores))[:count]
    return np.stack([np.asarray(stores.read(int(i))["frames"])[offset : offset + frames] for i in sorted(idx)])


@torch.no_grad()
def model_clips(ckpt: str, stores: StoreSet, count: int, context: int, frames: int, seed: int,
                batch: int = 16) -> tuple[np.ndarray, dict[str, Any]]:
    """`count` clips a world model dreamed: `context` real frames of a window, then `frames` frames under the window's
    recorded actions (DreamCore, the model's default sampler). Returns the clips and what made them."""
    from worldsim.dream.core import DreamCore

    s = WorldSampler.load(ckpt, decoder="auto")
    if stores.action_spec != s.meta.get("action_spec"):
        raise InputError(f"{ckpt} was trained on another game (action spec) than the real stores "
                         f"{[r.url for r in stores.readers]}: give real stores of each model's game")
    rng = np.random.default_rng(seed)
    idx = sorted(rng.permutation(len(stores))[:count].tolist())
    out = []
    for a in range(0, len(idx), batch):
        wins = [stores.read(int(i)) for i in idx[a : a + batch]]
        core = DreamCore(s, rows=len(wins))
        fr = [np.asarray(w["frames"]) for w in wins]
        acts = [np.asarray(w["actions"], np.float32) for w in wins]
        if any(f.shape[1:3] != (s.height, s.width) for f in fr):
            raise InputError(f"{ckpt} makes {s.height}x{s.width} frames; the real stores hold other sizes")
        core.reset_rows(list(range(len(wins))), [f[:context] for f in fr], [x[:context] for x in acts],
                        [""] * len(wins), [seed * 100003 + a + r for r in range(len(wins))])
        made = []
        for j in range(frames):
            act = torch.from_numpy(np.stack([x[context - 1 + j] for x in acts]))
            core.step(act)
            made.append(core.frames())
        out.append(np.stack(made, axis=1))
    info = {"path": str(C.resolve(ckpt)), "digest": s.digest, "steps": s.dream_steps, "decoder": s.decoder_name}
    return np.concatenate(out), info


# -- training ---------------------------------------------------------------------------------------------------------
def _split(urls: list[str], length: int, share: float) -> tuple[StoreSet, StoreSet]:
    """Training and test windows: the last `share` of each store's episodes (at least one) are the test's."""
    k = min(max(1, round(int(_attrs(u).get("stats", {}).get("episodes", 0)) * share)) for u in urls)
    return StoreSet(urls, length, "train", k), StoreSet(urls, length, "val", k)


def _attrs(url: str) -> dict[str, Any]:
    from store import open_store

    return dict(open_store(url).attrs)


def train_detector(cfg: DetectorConfig) -> dict[str, Any]:
    from worldsim.runtime import pick_device

    if not cfg.real or not cfg.models:
        raise InputError("train-detector needs real=[engine stores] and models=[checkpoints] whose clips it learns "
                         "from (unseen=[...] optional)")
    verify_stores(cfg.real)
    device = pick_device(cfg.device)
    length = cfg.context + cfg.frames
    train_set, test_set = _split(cfg.real, length, cfg.heldout_share)
    t0 = time.perf_counter()
    fake_tr, fake_te, unseen, sources = [], [], {}, []
    for i, ck in enumerate(cfg.models):
        a, info = model_clips(ck, train_set, cfg.clips, cfg.context, cfg.frames, cfg.seed * 1000 + i)
        b, _ = model_clips(ck, test_set, max(8, cfg.clips // 2), cfg.context, cfg.frames, cfg.seed * 1000 + i + 500)
        fake_tr.append(a)
        fake_te.append(b)
        sources.append(info)
        print(f"model clips: {info['path']} ({len(a)} train, {len(b)} test)", flush=True)
    unseen_info = []
    for i, ck in enumerate(cfg.unseen):
        clips, info = model_clips(ck, test_set, max(8, cfg.clips // 2), cfg.context, cfg.frames,
                                  cfg.seed * 1000 + 900 + i)
        unseen[info["path"]] = clips
        unseen_info.append(info)
        print(f"unseen model clips: {info['path']} ({len(clips)} test)", flush=True)
    fake_tr_a, fake_te_a = np.concatenate(fake_tr), np.concatenate(fake_te)
    real_tr = engine_clips(train_set, len(fake_tr_a), cfg.frames, cfg.context, cfg.seed)
    real_te = engine_clips(test_set, max(len(fake_te_a), 64), cfg.frames, cfg.context, cfg.seed + 1)
    gen_s = time.perf_counter() - t0
    # every clip also after an MP4 round trip: training draws either
    rt = {name: np.stack([mp4_round_trip(c) for c in arr]) for name, arr in
          (("real_tr", real_tr), ("fake_tr", fake_tr_a), ("real_te", real_te), ("fake_te", fake_te_a))}
    rt_unseen = {k: np.stack([mp4_round_trip(c) for c in v]) for k, v in unseen.items()}

    torch.manual_seed(cfg.seed)
    net = DetectorNet(cfg.width).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    x_all = np.concatenate([real_tr, fake_tr_a])
    x_rt = np.concatenate([rt["real_tr"], rt["fake_tr"]])
    y_all = np.concatenate([np.zeros(len(real_tr)), np.ones(len(fake_tr_a))]).astype(np.float32)
    rng = np.random.default_rng(cfg.seed)
    from tqdm import tqdm

    bar = tqdm(range(cfg.steps), desc="train-detector", unit="step")
    for step in bar:
        lr = cfg.lr * min(1.0, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / cfg.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        pick = rng.integers(0, len(x_all), cfg.batch_size)
        use_rt = rng.random(cfg.batch_size) < 0.5
        clips = np.where(use_rt[:, None, None, None, None], x_rt[pick], x_all[pick])
        flip = rng.random(cfg.batch_size) < 0.5
        clips = np.where(flip[:, None, None, None, None], clips[:, :, :, ::-1], clips)
        x = to_input(clips, cfg.size).to(device)
        y = torch.from_numpy(y_all[pick]).to(device)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == cfg.steps - 1:
            bar.set_postfix_str(f"loss {loss.item():.4f}")
    net.eval()
    det = Detector(net, cfg, threshold=0.0, meta={})
    s_real, s_fake = det.score(real_te), det.score(fake_te_a)
    thr = threshold_for(s_real)
    s_real_rt, s_fake_rt = det.score(rt["real_te"]), det.score(rt["fake_te"])
    thr_rt = threshold_for(s_real_rt)
    metrics: dict[str, Any] = {
        "heldout": {"auc": round(roc_auc(s_real, s_fake), 4), **at_fpr(s_real, s_fake, thr),
                    "engine_clips": len(real_te), "model_clips": len(fake_te_a)},
        "heldout_mp4": {"auc": round(roc_auc(s_real_rt, s_fake_rt), 4), **at_fpr(s_real_rt, s_fake_rt, thr_rt)},
        "unseen": {}}
    for info in unseen_info:
        p = info["path"]
        s_u, s_u_rt = det.score(unseen[p]), det.score(rt_unseen[p])
        metrics["unseen"][p] = {"auc": round(roc_auc(s_real, s_u), 4), **at_fpr(s_real, s_u, thr),
                                "auc_mp4": round(roc_auc(s_real_rt, s_u_rt), 4),
                                "tpr_mp4": at_fpr(s_real_rt, s_u_rt, thr_rt)["tpr"], "clips": len(unseen[p])}
    metrics["seconds"] = {"clips": round(gen_s, 1), "total": round(time.perf_counter() - t0, 1)}
    meta = {"kind": "detector", "config": asdict(cfg), "threshold": thr, "threshold_mp4": thr_rt,
            "metrics": metrics, "models": sources, "unseen": unseen_info,
            "real": [{"url": u, "digest": _attrs(u).get("digest")} for u in cfg.real]}
    path = C.save(cfg.out, cfg.steps, {"model": net.state_dict()}, meta)
    return {"checkpoint": str(path), **metrics}


class Detector:
    """A trained detector: `score(clips)` -> P(model-made) per clip; `flag(scores)` at the 1%-FPR threshold."""

    def __init__(self, net: DetectorNet, cfg: DetectorConfig, threshold: float, meta: dict[str, Any]) -> None:
        self.net, self.cfg, self.threshold, self.meta = net.eval(), cfg, threshold, meta
        self.raw_threshold = threshold
        self.device = next(net.parameters()).device

    @torch.no_grad()
    def score(self, clips: np.ndarray, batch: int = 64) -> np.ndarray:
        """uint8 clips (N, T, H, W, 3), T = the detector's clip length -> (N,) probabilities of "model-made"."""
        clips = np.asarray(clips)
        if clips.ndim != 5 or clips.shape[1] != self.cfg.frames or clips.shape[-1] != 3:
            raise InputError(f"clips must be (N, {self.cfg.frames}, H, W, 3) uint8, got shape {clips.shape}")
        out = []
        for a in range(0, len(clips), batch):
            out.append(torch.sigmoid(self.net(to_input(clips[a : a + batch], self.cfg.size).to(self.device))))
        return torch.cat(out).float().cpu().numpy() if out else np.zeros(0, np.float32)


def realism(det: Detector, rolls: list[dict[str, Any]]) -> dict[str, Any]:
    """The detector's ROC AUC between the engine's continuations and a model's rollouts of the same episodes
    (`worldsim.eval.metrics.rollouts`), cut into clips of its length: 0.5 means the detector cannot tell them apart
    (more realistic), 1.0 that it always can. Also the share of model clips flagged at its 1%-FPR threshold."""
    t = det.cfg.frames
    real, made = [], []
    for r in rolls:
        c, n = r["context"], len(r["model"]) // t * t
        real += list(np.asarray(r["real"])[c : c + n].reshape(-1, t, *r["model"].shape[1:]))
        made += list(np.asarray(r["model"])[:n].reshape(-1, t, *r["model"].shape[1:]))
    if not made:
        return {"skipped": f"rollouts shorter than the detector's {t}-frame clips"}
    s_real, s_made = det.score(np.stack(real)), det.score(np.stack(made))
    return {"auc": round(roc_auc(s_real, s_made), 4), "flagged": round(float((s_made > det.raw_threshold).mean()), 4),
            "engine_flagged": round(float((s_real > det.raw_threshold).mean()), 4), "clips": len(made),
            "detector": det.meta.get("path", ""), "detector_digest": det.meta.get("digest", "")}


def load_detector(path: str | Path, device: str = "cpu") -> Detector:
    ck = C.resolve(path)
    meta = C.load_meta(ck, kind="detector")
    cfg = DetectorConfig(**meta["config"])
    net = DetectorNet(cfg.width)
    net.load_state_dict(C.load_tensors(ck, "model"))
    det = Detector(net.to(device), cfg, float(meta["threshold_mp4"]), {**meta, "path": str(ck),
                                                                     "digest": C.digest(ck)})
    det.raw_threshold = float(meta["threshold"])  # for frames that never went through a video file
    return det


def read_clips(path: str | Path, frames: int) -> np.ndarray:
    """The non-overlapping clips of `frames` frames of a video file (N, frames, H, W, 3); a shorter video is an
    error naming its length."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with imageio.get_reader(path) as r:
            video = np.stack([np.asarray(f)[..., :3] for f in r])
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: not a readable video ({type(err).__name__})") from None
    n = len(video) // frames
    if n == 0:
        raise InputError(f"{path} has {len(video)} frames; the detector scores clips of {frames}")
    return video[: n * frames].reshape(n, frames, *video.shape[1:])
