"""Probes trained on engine frames that score generated video (docs/architecture.md section 5).

- `InverseDynamics` (IDM): two consecutive frames -> the action taken between them (`actions[t]` leads from frame t
  to frame t + 1). Trained on the checkpoint's training stores, it labels the model's rollouts; the labels are
  compared with the actions that conditioned them (per key: F1 for buttons, accuracy for other discrete keys,
  mean absolute error for continuous columns such as camera degrees), beside its accuracy on real held-out frames.
- `AttributeClassifier`: one frame -> captioned scene attributes (biome, time of day, physics scene kind), labelled
  from the stores' short prompts (datagen/captions.py writes them from ground truth). It scores text-to-video
  samples made from prompts naming those attributes.

Both are small conv nets on frames resized to `size` x `size`, trained for a few hundred seeded steps and cached as
safetensors + JSON (keyed by the training stores' digests and the probe config), so a second evaluation reuses them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from store import StoreError
from store.prompts import BIOME_SHORT, SCENE_PHRASES, TIME_PHRASES
from store.spaces import column_kinds
from worldsim.model.sampler import WorldSampler
from worldsim.train.data import StoreSet

VERSION = 2  # bump when the probes' architecture or training changes: invalidates caches
Column = tuple[str, str, int]  # (flat key, "binary" | "discrete" | "continuous", classes or 1)


@dataclass
class ProbeConfig:
    steps: int = 300  # optimizer steps
    batch_size: int = 64
    size: int = 64  # frames are resized to size x size
    pairs: int = 4096  # training windows drawn from the stores
    lr: float = 1e-3
    width: int = 32  # channels of the first conv layer
    seed: int = 0


class ProbeNet(nn.Module):
    """Strided conv net with global average pooling: (B, C_in, S, S) -> (B, out)."""

    def __init__(self, in_channels: int, out: int, width: int = 32) -> None:
        super().__init__()
        # a full-resolution 5x5 layer first: it compares the two frames at offsets of a few pixels (the motion)
        chans = [in_channels, width, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            k, stride = (5, 1) if i == 0 else (3, 2 if i < 4 else 1)
            layers += [nn.Conv2d(a, b, k, stride=stride, padding=k // 2), nn.GroupNorm(8, b), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(chans[-1], out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# -- data ------------------------------------------------------------------------------------------------------------
def resize(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> uint8 (..., 3, size, size), antialiased when shrinking."""
    x = torch.as_tensor(np.ascontiguousarray(frames))
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).reshape(*lead, 3, size, size)


def load_windows(urls: list[str], split: str, val_episodes: int, count: int, size: int,
                 seed: int) -> dict[str, Any]:
    """`count` windows of 2 frames (seeded draw, in store order): pairs (N, 2, 3, S, S) uint8, actions (N, A) of the
    first frame (the action between the two), prompts [N] (the short prompt of the segment holding the first)."""
    stores = StoreSet(urls, 2, split, val_episodes)
    if stores.latents:
        raise StoreError(f"{urls} hold VAE latents, not frames; probes need frames: pass train_store=PATH "
                         f"(the frame store the latents were made from)")
    rng = np.random.default_rng([seed, 0x1D])
    picks = np.sort(rng.choice(len(stores), size=min(count, len(stores)), replace=False))
    items = [stores.read(int(i)) for i in picks]
    return {"pairs": torch.stack([resize(it["frames"], size) for it in items]),
            "actions": np.stack([it["actions"][0] for it in items]).astype(np.float32),
            "prompts": [it["prompt"] for it in items], "scale": np.asarray(stores.action_scale, np.float32)}


def _pair_input(pairs: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3, S, S) uint8 -> (B, 9, S, S): both frames in [-1, 1] and their difference (the motion)."""
    x = pairs.float() / 127.5 - 1
    return torch.cat([x[:, 0], x[:, 1], x[:, 1] - x[:, 0]], dim=1)


def _fit(net: nn.Module, loss_of: Callable[[np.ndarray], torch.Tensor], n: int, cfg: ProbeConfig) -> float:
    """AdamW on random minibatches of n examples (drawn from a seeded generator); returns the last loss."""
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    rng = np.random.default_rng([cfg.seed, 0xF17])
    net.train()
    loss = torch.zeros(())
    with torch.enable_grad():  # callers sample under no_grad
        for _ in range(cfg.steps):
            loss = loss_of(rng.integers(0, n, size=min(cfg.batch_size, n)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    return float(loss.detach())


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # the probe's init must not depend on (or move) the global generator
        torch.manual_seed(seed)
        return make()


# -- inverse dynamics ------------------------------------------------------------------------------------------------
def action_columns(spec: dict[str, Any], action_dim: int) -> list[Column]:
    """What each flat action column is, from a store's `action_spec` (`store.spaces.column_kinds`): 0/1 columns
    (Discrete(2) keys, one value of a one-hot Discrete such as Atari's) binary, other Discrete value columns
    discrete, Box entries (camera degrees) continuous."""
    keys = list(spec.get("flat_keys") or [f"a{i}" for i in range(action_dim)])
    try:
        kinds = column_kinds(spec)
    except (KeyError, TypeError, ValueError):
        kinds = []
    if len(kinds) != len(keys):  # a spec that does not describe its columns: treat them as continuous
        kinds = [("continuous", 1)] * len(keys)
    return [(k, kind, n) for k, (kind, n) in zip(keys, kinds)]


class InverseDynamics(nn.Module):
    """Two consecutive frames -> the action between them, one output group per flat action column."""

    def __init__(self, columns: list[Column], scale: list[float], pos_weight: list[float], width: int = 32) -> None:
        super().__init__()
        self.columns, self.scale, self.width = list(columns), [float(s) for s in scale], width
        self.register_buffer("pos_weight", torch.tensor(pos_weight, dtype=torch.float32))
        self.net = ProbeNet(9, sum(n for _, _, n in self.columns), width)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:  # (B, 2, 3, S, S) uint8 -> (B, D)
        return self.net(_pair_input(pairs))

    def loss(self, raw: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        terms, o = [], 0
        for i, (_, kind, n) in enumerate(self.columns):
            a = actions[:, i]
            if kind == "binary":  # pos_weight: rare buttons (attack, use) would otherwise never be predicted
                terms.append(F.binary_cross_entropy_with_logits(raw[:, o], (a > 0.5).float(),
                                                                pos_weight=self.pos_weight[i]))
            elif kind == "discrete":
                terms.append(F.cross_entropy(raw[:, o : o + n], a.round().clamp(0, n - 1).long()))
            else:
                terms.append(F.smooth_l1_loss(raw[:, o], a / self.scale[i]))
            o += n
        return torch.stack(terms).mean()

    @torch.no_grad()
    def predict(self, pairs: torch.Tensor, batch: int = 256) -> np.ndarray:
        """(N, 2, 3, S, S) uint8 -> actions (N, A) in the store's units."""
        raw = torch.cat([self(pairs[i : i + batch]) for i in range(0, len(pairs), batch)])
        out, o = [], 0
        for i, (_, kind, n) in enumerate(self.columns):
            if kind == "binary":
                out.append((raw[:, o] > 0).float())
            elif kind == "discrete":
                out.append(raw[:, o : o + n].argmax(dim=1).float())
            else:
                out.append(raw[:, o] * self.scale[i])
            o += n
        return torch.stack(out, dim=1).numpy()


def train_idm(data: dict[str, Any], spec: dict[str, Any], cfg: ProbeConfig) -> tuple[InverseDynamics, float]:
    """An IDM fitted to `load_windows` data; returns it and its last training loss."""
    acts = data["actions"]
    columns = action_columns(spec, acts.shape[1])
    pos = (acts > 0.5).sum(axis=0)
    pos_weight = [float(np.clip((len(acts) - p) / p, 1.0, 10.0)) if p else 1.0 for p in pos]
    idm = _seeded(cfg.seed, lambda: InverseDynamics(columns, data["scale"].tolist(), pos_weight, cfg.width))
    a = torch.from_numpy(acts)
    last = _fit(idm, lambda b: idm.loss(idm(data["pairs"][b]), a[b]), len(acts), cfg)
    return idm, last


def score_actions(columns: list[Column], pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """Per key: F1 of the pressed class (binary; None when neither side ever presses it), accuracy (discrete),
    mean absolute error (continuous); and their means over keys."""
    keys: dict[str, Any] = {}
    for i, (k, kind, _) in enumerate(columns):
        p, t = pred[:, i], true[:, i]
        if kind == "binary":
            pp, tt = p > 0.5, t > 0.5
            tp, fp, fn = int((pp & tt).sum()), int((pp & ~tt).sum()), int((~pp & tt).sum())
            keys[k] = {"kind": kind, "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
                       "positives": int(tt.sum())}
        elif kind == "discrete":
            keys[k] = {"kind": kind, "accuracy": float((p.round() == t.round()).mean())}
        else:
            keys[k] = {"kind": kind, "mae": float(np.abs(p - t).mean())}

    def mean(kind: str, field: str) -> float | None:
        vals = [v[field] for v in keys.values() if v["kind"] == kind and v.get(field) is not None]
        return float(np.mean(vals)) if vals else None

    return {"keys": keys, "binary_f1_mean": mean("binary", "f1"), "discrete_accuracy_mean": mean("discrete",
            "accuracy"), "continuous_mae_mean": mean("continuous", "mae"), "pairs": len(true)}


def idm_scores(idm: InverseDynamics, rolls: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """The IDM's labels of the rollouts' frame pairs (the last context frame and the generated frames) against the
    conditioning actions; of the random-action rollouts against their random actions; and of the real frames."""
    groups: dict[str, tuple[list[torch.Tensor], list[np.ndarray]]] = {n: ([], []) for n in ("generated", "random",
                                                                                               "real")}
    for r in rolls:
        c, last = r["context"], r["real"][r["context"] - 1 : r["context"]]
        for name, seq, acts in (("generated", np.concatenate([last, r["model"]]), r["actions"]),
                                ("random", np.concatenate([last, r["random"]]), r["random_actions"]),
                                ("real", r["real"][c - 1 :], r["actions"])):
            frames = resize(seq, size)  # (H + 1, 3, S, S)
            groups[name][0].append(torch.stack([frames[:-1], frames[1:]], dim=1))
            groups[name][1].append(acts)
    out = {}
    for name, (pairs, acts) in groups.items():
        out[name] = score_actions(idm.columns, idm.predict(torch.cat(pairs)), np.concatenate(acts))
    return out


# -- scene attributes --------------------------------------------------------------------------------------------------
def attribute_labels(prompt: str) -> dict[str, str]:
    """Scene attributes a short prompt names, in the grammar of datagen/captions.py: voxel prompts start with the
    biome and name the time of day ("snowy land at night, walking"); physics prompts name the scene ("... on a
    wooden table")."""
    out = {}
    for biome, phrase in BIOME_SHORT.items():
        if prompt.startswith(phrase + " "):
            out["biome"] = biome
    for phase, phrases in TIME_PHRASES.items():
        if phrases[0] in prompt:
            out["time_of_day"] = phase
    for scene, phrases in SCENE_PHRASES.items():
        if phrases[0] in prompt:
            out["scene"] = scene
    return out


def usable_attributes(prompts: list[str]) -> dict[str, list[str]]:
    """Attributes with at least two values among the prompts -> their values, sorted."""
    seen: dict[str, set[str]] = {}
    for p in prompts:
        for a, v in attribute_labels(p).items():
            seen.setdefault(a, set()).add(v)
    return {a: sorted(vs) for a, vs in sorted(seen.items()) if len(vs) >= 2}


class AttributeClassifier(nn.Module):
    """One frame -> a distribution over the values of each attribute."""

    def __init__(self, attributes: dict[str, list[str]], width: int = 32) -> None:
        super().__init__()
        self.attributes, self.width = {a: list(v) for a, v in attributes.items()}, width
        self.net = ProbeNet(3, sum(len(v) for v in self.attributes.values()), width)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:  # (B, 3, S, S) uint8 -> {a: (B, n_a)}
        raw, out, o = self.net(frames.float() / 127.5 - 1), {}, 0
        for a, vals in self.attributes.items():
            out[a] = raw[:, o : o + len(vals)]
            o += len(vals)
        return out

    def targets(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Class indices per attribute, -1 where a prompt does not name one of the known values."""
        labels = [attribute_labels(p) for p in prompts]
        return {a: torch.tensor([vals.index(lb[a]) if lb.get(a) in vals else -1 for lb in labels])
                for a, vals in self.attributes.items()}

    @torch.no_grad()
    def predict(self, frames: torch.Tensor) -> dict[str, np.ndarray]:
        """(N, 3, S, S) uint8 -> per attribute the mean class probabilities over the frames. # (n_a,)"""
        return {a: F.softmax(v, dim=1).mean(dim=0).numpy() for a, v in self(frames).items()}


def train_attributes(data: dict[str, Any], attributes: dict[str, list[str]],
                     cfg: ProbeConfig) -> tuple[AttributeClassifier, float]:
    clf = _seeded(cfg.seed, lambda: AttributeClassifier(attributes, cfg.width))
    frames, targets = data["pairs"][:, 0], clf.targets(data["prompts"])

    def loss_of(b: np.ndarray) -> torch.Tensor:
        logits = clf(frames[b])
        return torch.stack([F.cross_entropy(logits[a], targets[a][b], ignore_index=-1)
                            if bool((targets[a][b] >= 0).any()) else logits[a].sum() * 0 for a in logits]).mean()

    return clf, _fit(clf, loss_of, len(frames), cfg)


def real_accuracy(clf: AttributeClassifier, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-frame accuracy of the classifier on real frames (its ceiling), per attribute."""
    targets = clf.targets(data["prompts"])
    with torch.no_grad():
        logits = clf(data["pairs"][:, 0])
    out = {}
    for a, t in targets.items():
        ok = t >= 0
        n = int(ok.sum())
        out[a] = {"accuracy": float((logits[a].argmax(1)[ok] == t[ok]).float().mean()) if n else None, "frames": n}
    return out


def pick_prompts(candidates: list[str], attributes: dict[str, list[str]], count: int,
                 known: Callable[[str], bool]) -> list[str]:
    """Up to `count` distinct prompts (in the given order) covering each attribute value once before any repeats."""
    pool = [p for p in dict.fromkeys(candidates) if known(p) and set(attribute_labels(p)) & set(attributes)]
    chosen: list[str] = []
    for a, vals in attributes.items():
        for v in vals:
            hit = next((p for p in pool if attribute_labels(p).get(a) == v and p not in chosen), None)
            if hit and len(chosen) < count:
                chosen.append(hit)
    chosen += [p for p in pool if p not in chosen][: max(0, count - len(chosen))]
    return chosen


def text_adherence(sampler: WorldSampler, clf: AttributeClassifier, prompts: list[str], size: int, steps: int,
                   seed: int, tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """t2v samples (one per prompt, the model's window long) scored by the classifier against the prompts."""
    hits: dict[str, list[bool]] = {a: [] for a in clf.attributes}
    samples = []
    for i, prompt in enumerate(prompts):
        video = sampler.t2v(prompt, frames=sampler.frames, steps=steps, seed=seed + i)
        probs, want = clf.predict(resize(video, size)), attribute_labels(prompt)
        got = {a: clf.attributes[a][int(np.argmax(p))] for a, p in probs.items()}
        for a in hits:
            if want.get(a) in clf.attributes[a]:
                hits[a].append(got[a] == want[a])
        samples.append({"prompt": prompt, "predicted": got})
        if tick:
            tick()
    return {"attributes": {a: {"accuracy": float(np.mean(h)) if h else None, "samples": len(h),
                               "values": clf.attributes[a], "chance": 1 / len(clf.attributes[a])}
                           for a, h in hits.items()}, "samples": samples}


# -- cache -----------------------------------------------------------------------------------------------------------
def cached(folder: Path, name: str, key: dict[str, Any], make: Callable[[], tuple[nn.Module, dict[str, Any]]],
           rebuild: Callable[[dict[str, Any]], nn.Module]) -> tuple[nn.Module, dict[str, Any], bool]:
    """A probe from `folder/name.safetensors` + `.json` when its key matches, else `make()` and save it.
    Returns (probe, its info, whether it came from the cache)."""
    key = {**key, "version": VERSION}
    meta_path, weights = folder / f"{name}.json", folder / f"{name}.safetensors"
    if meta_path.is_file() and weights.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            net = rebuild(meta["info"])
            net.load_state_dict(load_file(str(weights)))
            return net.eval(), meta["info"], True
    net, info = make()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_name(weights.name + ".part")
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(weights)
    meta_path.write_text(json.dumps({"key": key, "info": info}, indent=1, sort_keys=True))
    return net, info, False
