"""World-model metrics on held-out data (docs/architecture.md section 5), on uint8 frames.

- PSNR = 10 log10(255^2 / MSE); SSIM (Wang et al. 2004): 11x11 gaussian window, sigma 1.5, K1 0.01, K2 0.03,
  computed per channel and averaged.
- `next_frame_metrics`: teacher-forced next frame: real context (the model's window minus one latent frame), real
  action, one generated frame, beside two references from the same windows: the VAE's reconstruction of that frame
  (the ceiling the model works under) and copying the last context frame (a model that ignores dynamics).
- `rollouts` + `horizon_metrics`: autoregressive rollouts from a real starting context under the recorded actions
  and under random actions (rows of the store drawn by a seeded permutation), scored at horizons 1, 8, 16, 32;
  dPSNR = PSNR(real, recorded-action rollout) - PSNR(real, random-action rollout) (Genie, Bruce et al. 2024).
  Beside them, `detail_ratio`: the fine detail of the generated frames against the engine's at that horizon (the
  mean squared difference of neighbouring pixels, `detail`, summed over the episodes, generated / engine): 1 is as
  much edge and texture as the engine draws, a blurred frame scores well below 1 whatever its PSNR; and over all the
  generated frames, `stripes`: how far a stripe pattern of any period stands out (the engine's frames beside).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from store import StoreError, buckets, open_store, read_episode
from worldsim.errors import InputError
from worldsim.model.frames import gaussian_kernel, psnr_of_mse
from worldsim.model.sampler import WorldSampler
from worldsim.train.data import StoreSet

Tick = Callable[[], None] | None


# -- frame metrics ---------------------------------------------------------------------------------------------------
def psnr_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR of uint8 frames (N, H, W, 3) -> (N,) (`psnr_of_mse`)."""
    d = a.astype(np.float64) - b.astype(np.float64)
    return psnr_of_mse((d**2).reshape(len(d), -1).mean(axis=1))


def detail(frames: np.ndarray) -> np.ndarray:
    """Fine detail of uint8 frames (N, H, W, 3) -> (N,): the mean squared difference between horizontally and
    between vertically neighbouring pixels (0-255 scale): edges and texture; a blurred frame has little."""
    f = frames.astype(np.float64)
    dx = ((f[:, :, 1:] - f[:, :, :-1]) ** 2).reshape(len(f), -1).mean(axis=1)
    dy = ((f[:, 1:] - f[:, :-1]) ** 2).reshape(len(f), -1).mean(axis=1)
    return (dx + dy) / 2


def luma(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (..., H, W, C) -> float64 luma (..., H, W) (Rec. 601 weights; one channel: that channel)."""
    f = np.asarray(frames)
    if f.shape[-1] >= 3:
        return f[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return f[..., 0].astype(np.float64)


def profile_residual(y: np.ndarray, axis: int) -> np.ndarray:
    """The luma frames' (N, H, W) profiles along `axis` (2: one value per row, the row means; 1: per column) minus
    their own gaussian smoothing (sigma 3 pixels, edges repeated): (N, H) or (N, W). What is left is edges and
    lines; the scene's layout (sky over ground) goes."""
    p = y.mean(axis=axis)
    g = gaussian_kernel(3.0)  # 19 taps, symmetric: a correlation is the convolution
    r = len(g) // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(p, ((0, 0), (r, r)), mode="edge"), len(g), axis=1)
    return p - windows @ g


def stripes(frames: np.ndarray) -> dict[str, Any] | None:
    """How much a periodic stripe pattern, at any period from 2 to about 16 pixels, stands out in uint8 frames
    (N, H, W, 3); None when the frames are smaller than 16 pixels or there are none.

    Per axis (`rows`: horizontal stripes, `cols`: vertical ones), each frame's luma profile (the mean of every row,
    or of every column) minus its own gaussian smoothing (sigma 3 pixels: the scene's layout, sky above ground,
    goes; edges and stripes stay), its power spectrum averaged over the frames, and at each period shorter than 16
    pixels the power over the median of its 3 neighbours each side. Returns the strongest of those peaks per axis
    and the period in pixels: {"rows": {"peak", "period"}, "cols": {...}}. Scenes, sharp or blurred, have a smooth
    spectrum and score about 1-4 (their edges fall anywhere); lines repeating every p pixels, a token grid's seams
    among them, put peaks at period p and its harmonics (p / 2, p / 3, ...; the period named is the strongest's): a
    3-level line every 4 rows over blurred scenes scores in the hundreds. Why beside `seams`
    (benchmarks/sharp_dream.py, the token period only): the eye calls any regular banding a stripe pattern,
    whatever its period; docs/world_model.md "Bands and stripes"."""
    f = np.asarray(frames)
    if f.ndim != 4 or len(f) == 0 or min(f.shape[1:3]) < 16:
        return None
    y = luma(f)
    out: dict[str, Any] = {}
    for name, axis in (("rows", 2), ("cols", 1)):
        res = profile_residual(y, axis)  # (N, L): one value per row (rows) or per column (cols)
        n = res.shape[1]
        power = (np.abs(np.fft.rfft(res, axis=1)) ** 2).mean(axis=0)
        low = max(2, int(np.ceil(n / 16)))  # periods up to 16 pixels: longer ones are the layout the smoothing took
        ratio = np.zeros(len(power))
        for j in range(low + 1, len(power)):
            near = np.r_[power[max(low, j - 3) : j], power[j + 1 : j + 4]]
            ratio[j] = power[j] / max(float(np.median(near)), 1e-12)
        j = int(ratio.argmax())  # 0 only where nothing varies (a flat frame): no peak, no period
        out[name] = {"peak": float(ratio[j]), "period": n / j if j else None}
    return out


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape, over all their values."""
    return float(psnr_frames(np.asarray(a)[None], np.asarray(b)[None])[0])


@functools.lru_cache(maxsize=4)
def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()  # (size,)


def ssim_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame SSIM of uint8 frames (N, H, W, 3) -> (N,): gaussian 11x11 window (sigma 1.5) over the valid region
    of each channel, constants (0.01 * 255)^2 and (0.03 * 255)^2, averaged over pixels and channels."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4:
        raise InputError(f"SSIM needs two (N, H, W, C) arrays of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[1:3]) < 11:
        raise InputError(f"SSIM's 11x11 window needs frames of at least 11x11 pixels, got {a.shape[1]}x{a.shape[2]}")
    c = a.shape[-1]
    g = _gaussian()
    wx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)  # separable window: rows then columns, one per channel
    wy = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H - 10, W - 10)
        return F.conv2d(F.conv2d(x, wx, groups=c), wy, groups=c)

    x = torch.from_numpy(a).double().permute(0, 3, 1, 2)
    y = torch.from_numpy(b).double().permute(0, 3, 1, 2)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


def ssim_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 frames (H, W, 3) or frame stacks (N, H, W, 3)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 3:
        a, b = a[None], b[None]
    return float(ssim_frames(a, b).mean())


# -- teacher-forced next frame ---------------------------------------------------------------------------------------
def next_frame_metrics(sampler: WorldSampler, stores: StoreSet, count: int = 64, steps: int = 8, seed: int = 0,
                       tick: Tick = None) -> dict[str, Any]:
    """Mean next-frame PSNR and SSIM over `count` evenly spaced windows of the model's window length."""
    k = sampler.k
    # with pixel carry (worldsim/model/render.py) the model's latents decoded alone are scored too: what the DiT
    # predicts, beside what the player sees
    carry = sampler.carries()
    names = ("model", "recon", "copy", *(["latent"] if carry else []))
    rows: dict[str, list[float]] = {n: [] for n in names}
    ssim: dict[str, list[float]] = {n: [] for n in names}
    for j, i in enumerate(stores.spread(count)):
        w = stores.read(i)
        frames, actions = w["frames"], w["actions"]
        ctx = frames[: len(frames) - k]
        target = frames[len(ctx) :]
        guesses = {"recon": sampler.decode(sampler.encode(target)), "copy": np.repeat(ctx[-1:], len(target), axis=0)}
        made = sampler.rollout_renders(ctx, actions[: len(frames) - 1], (sampler.render, "latent"), steps=steps,
                                       seed=seed + j)  # one run of the model, rendered both ways
        guesses["model"], guesses["latent"] = made[sampler.render][len(ctx) :], made["latent"][len(ctx) :]
        for name in names:
            rows[name].append(psnr_uint8(guesses[name], target))
            ssim[name].append(float(ssim_frames(guesses[name], target).mean()))
        if tick:
            tick()
    out = {"next_frame_psnr": float(np.mean(rows["model"])), "next_frame_ssim": float(np.mean(ssim["model"])),
           "vae_reconstruction_psnr": float(np.mean(rows["recon"])),
           "vae_reconstruction_ssim": float(np.mean(ssim["recon"])),
           "copy_last_frame_psnr": float(np.mean(rows["copy"])), "copy_last_frame_ssim": float(np.mean(ssim["copy"])),
           "windows": len(rows["model"]), "steps": steps, "render": "carry" if carry else "latent"}
    if carry:
        out["latent_decoded_psnr"] = float(np.mean(rows["latent"]))
        out["latent_decoded_ssim"] = float(np.mean(ssim["latent"]))
    return out


def next_frame_psnr(sampler: WorldSampler, stores: StoreSet, count: int = 64, steps: int = 8,
                    seed: int = 0) -> dict[str, Any]:
    """`next_frame_metrics` under its first name (the recipe's report reads its PSNR keys)."""
    return next_frame_metrics(sampler, stores, count, steps, seed)


# -- the held-out store ------------------------------------------------------------------------------------------------
def check_store(sampler: WorldSampler, url: str) -> dict[str, Any]:
    """What an evaluation needs of a held-out store, checked against the checkpoint.

    Returns {"url", "digest", "attrs", "episodes": [(job episode index, rows)] at the model's resolution}.

    Raises:
        StoreError: the store is missing or not finalized, its action spec differs from the checkpoint's, it has no
            episode at the model's resolution, or none long enough for the model's window.
    """
    if not url:
        raise StoreError("store is required: store=PATH (a held-out store of the game the checkpoint learned, "
                         "e.g. made with `worldsim generate ... seed=1000`)")
    if "://" not in url and not Path(url).exists():
        raise StoreError(f"no store at {url}: pass store=PATH, a held-out store made with `worldsim generate` "
                         f"(other seeds than the training data)")
    root = open_store(url)
    attrs = dict(root.attrs)
    spec, want = attrs.get("action_spec", {}), sampler.meta.get("action_spec", {})
    if spec != want:
        raise StoreError(f"{url} has action keys {spec.get('flat_keys')} but the checkpoint was trained on "
                         f"{want.get('flat_keys')} (another action spec); evaluate on a store of the same game")
    name = f"b_{sampler.height}x{sampler.width}"
    if name not in buckets(root):
        raise StoreError(f"{url} has no {sampler.height}x{sampler.width} episodes (it holds "
                         f"{[b[2:] for b in buckets(root)]}); evaluate at the checkpoint's resolution")
    b = root[name]
    ends = b["meta/episode_ends"][...].astype(np.int64)
    lengths = np.diff(np.concatenate([[0], ends]))
    index = b["meta/episode_index"][...].astype(np.int64)
    episodes = sorted((int(i), int(n)) for i, n in zip(index, lengths) if n >= sampler.frames)
    if not episodes:
        raise StoreError(f"{url}: every episode is shorter than the model's window of {sampler.frames} frames "
                         f"(longest {int(lengths.max())}); generate longer held-out episodes (steps=...)")
    return {"url": str(url), "digest": attrs.get("digest", ""), "attrs": attrs, "episodes": episodes}


def action_pool(url: str) -> np.ndarray:
    """Every executed action row of a store (the final no-op row of each episode left out). # (N, A)"""
    root = open_store(url)
    rows = [root[n]["data/actions"][...][~root[n]["data/is_last"][...]] for n in buckets(root)]
    return np.concatenate(rows).astype(np.float32)


def random_actions(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` action rows drawn from the pool by a seeded permutation (without replacement while the pool lasts)."""
    perm = rng.permutation(len(pool))
    return pool[np.resize(perm, n)]


# -- autoregressive rollouts -----------------------------------------------------------------------------------------
def rollouts(sampler: WorldSampler, url: str, episodes: list[tuple[int, int]], horizons: list[int], steps: int,
             seed: int, tick: Tick = None) -> list[dict[str, Any]]:
    """One rollout per episode from its first `frames - k` real frames, as long as the largest horizon the episode
    allows, under the recorded actions and under random ones (same sampling seed, so only the actions differ).

    Returns per episode: index, context c, length H (new frames), real (c + H frames), model, random (generated
    frames after the context), actions (the recorded actions driving the new frames) and random_actions. # (H, A)
    """
    c = sampler.frames - sampler.k
    pool = action_pool(url)
    out = []
    for j, (index, rows) in enumerate(episodes):
        h = min(max(horizons), rows - c)
        ep = read_episode(url, index)
        frames, acts = ep["frames"][: c + h], ep["actions"][: c + h - 1]
        rng = np.random.default_rng([seed, index, 0xAC7])
        rand = acts.copy()
        rand[c - 1 :] = random_actions(pool, len(acts) - (c - 1), rng)  # the context's own actions stay real
        made = {}
        for name, a in (("model", acts), ("random", rand)):
            made[name] = sampler.rollout(frames[:c], a, steps=steps, seed=seed + 1000 * j)[c:]
            if tick:
                tick()
        out.append({"index": index, "context": c, "length": h, "real": frames, "model": made["model"],
                    "random": made["random"], "actions": acts[c - 1 :], "random_actions": rand[c - 1 :]})
    return out


def horizon_metrics(rolls: list[dict[str, Any]], horizons: list[int]) -> dict[str, Any]:
    """PSNR/SSIM and fine detail at each horizon h (the h-th generated frame) of the rollouts, copy-last-frame and
    dPSNR beside them (dPSNR only where the rollouts carry a `random` one); episodes too short for a horizon are
    counted in `skipped`, a horizon no episode reaches is None."""
    table: dict[str, Any] = {}
    skipped: dict[str, int] = {}
    for h in horizons:
        got = [r for r in rolls if r["length"] >= h]
        skipped[str(h)] = len(rolls) - len(got)
        if not got:
            table[str(h)] = None
            continue
        cols: dict[str, list[float]] = {}
        for r in got:
            c = r["context"]
            real = r["real"][c + h - 1][None]
            guesses = {"model": r["model"][h - 1][None], "copy_last": r["real"][c - 1][None],
                       **({"random": r["random"][h - 1][None]} if "random" in r else {})}
            for name, g in guesses.items():
                cols.setdefault(f"{name}_psnr", []).append(float(psnr_frames(g, real)[0]))
                cols.setdefault(f"{name}_ssim", []).append(float(ssim_frames(g, real)[0]))
                cols.setdefault(f"{name}_detail", []).append(float(detail(g)[0]))
            cols.setdefault("real_detail", []).append(float(detail(real)[0]))
        row = {k: float(np.mean(v)) for k, v in cols.items()}
        if "random_psnr" in row:
            row["dpsnr"] = row["model_psnr"] - row["random_psnr"]
        row["detail_ratio"] = row["model_detail"] / max(row["real_detail"], 1e-9)
        row["episodes"] = len(got)
        table[str(h)] = row
    made = [r["model"][: r["length"]] for r in rolls if r["length"] > 0]
    real = [r["real"][r["context"] : r["context"] + r["length"]] for r in rolls if r["length"] > 0]
    return {"horizons": table, "skipped": skipped, "episodes": len(rolls),
            "context": rolls[0]["context"] if rolls else None,
            # periodic stripes over every generated frame of the recorded-action rollouts, the engine's beside
            "stripes": {"model": stripes(np.concatenate(made)) if made else None,
                        "engine": stripes(np.concatenate(real)) if real else None}}


def pick_episodes(episodes: list[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    """`count` evenly spaced episodes (a fixed evaluation subset)."""
    picks = np.linspace(0, len(episodes) - 1, min(count, len(episodes))).round().astype(int)
    return [episodes[i] for i in sorted(set(picks.tolist()))]


# -- revisit: look away and back ---------------------------------------------------------------------------------------
STILL_KEYS = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack", "use")


def find_revisits(actions: np.ndarray, spec: dict[str, Any], min_turn: float = 150.0, within: int = 12,
                  tolerance: float = 2.0) -> list[tuple[int, int, int]]:
    """Look-away-and-back excursions in one episode's stored actions (# (T, A), actions[t] after frame t).

    An excursion leaves from frame `leave`: within `within` actions the camera yaw turns at least `min_turn` degrees
    away and comes back to within `tolerance` degrees of where it started, with the pitch unchanged and no movement,
    attack or use key pressed, so the engine's view on return is the view it left. Returns (leave, far, back) frame
    indices: the frame before leaving, the frame seen furthest away, the first frame after the return. Needs the
    action spec's `camera_yaw` (and `camera_pitch`) columns; other games have none: [].
    """
    keys = list(spec.get("flat_keys", []))
    if "camera_yaw" not in keys:
        return []
    yaw = actions[:, keys.index("camera_yaw")].astype(np.float64)
    pitch = actions[:, keys.index("camera_pitch")].astype(np.float64) if "camera_pitch" in keys else 0 * yaw
    busy = np.zeros(len(actions), bool)
    for k in STILL_KEYS:
        if k in keys:
            busy |= actions[:, keys.index(k)] != 0
    found, t = [], 0
    while t < len(actions):
        if yaw[t] == 0 or busy[t]:
            t += 1
            continue
        span = slice(t, min(t + within, len(actions)))
        turned, tilted = np.cumsum(yaw[span]), np.cumsum(pitch[span])
        stop = int(np.argmax(busy[span])) if busy[span].any() else len(turned)
        far = int(np.argmax(np.abs(turned[:stop]))) if stop else 0
        home = [j for j in range(far + 1, stop) if abs(turned[j]) <= tolerance and abs(tilted[j]) <= tolerance]
        if stop and abs(turned[far]) >= min_turn and home:
            found.append((t, t + far + 1, t + home[0] + 1))
            t += home[0] + 1
        else:
            t += 1
    return found


def dream_after(sampler: WorldSampler, frames: np.ndarray, actions: np.ndarray, end: int, steps: int, seed: int,
                stop: int | None = None) -> np.ndarray:
    """`frames[: stop + 1]` (default: all) with every frame after `end` dreamed by the model, from at most its
    trained context of real frames ending at frame `end` (whole latent frames), under the recorded actions
    (`actions[t]` leads from frame t to t + 1)."""
    stop = len(frames) - 1 if stop is None else stop
    ctx = sampler.frames - sampler.k  # the real context a rollout starts from, as in `rollouts`
    start = max(0, end + 1 - ctx)
    start += (end + 1 - start) % sampler.k
    out = np.array(frames[: stop + 1])
    out[start:] = sampler.rollout(frames[start : end + 1], actions[start:stop], steps=steps, seed=seed)
    return out


def revisit_psnrs(made: np.ndarray, frames: np.ndarray, leave: int, far: int, back: int) -> dict[str, float]:
    """The revisit scores of one look away and back (frame indices leave, far, back): the dream against the engine
    at the far point and copy-last's (the frame before leaving) there; the dream's return frame and the engine's
    against the frame before leaving."""
    return {"far_model_psnr": psnr_uint8(made[far], frames[far]),
            "far_copy_last_psnr": psnr_uint8(frames[leave], frames[far]),
            "return_model_psnr": psnr_uint8(made[back], frames[leave]),
            "return_engine_psnr": psnr_uint8(frames[back], frames[leave])}


def revisit_metrics(sampler: WorldSampler, url: str, steps: int, seed: int, count: int = 16,
                    tick: Tick = None) -> dict[str, Any]:
    """Memory under camera motion on the look-away-and-back excursions of a store (`find_revisits`; `worldsim
    generate policy=lookback` records episodes full of them). Each is dreamed from the real frames up to the one
    before leaving, under the recorded actions. At the far point the dream is scored against the engine's frame
    beside copying the frame before leaving (did it really turn?); on return, the dream's frame against the frame
    before leaving (did it remember?), beside the engine's own return frame against it (its ceiling)."""
    store = check_store(sampler, url)
    spec = store["attrs"].get("action_spec", {})
    ctx = sampler.frames - sampler.k  # the real context a rollout starts from, as in `rollouts`
    cases, episodes = [], {}  # episodes with an excursion, kept from the one read that found it
    for index, _ in store["episodes"]:
        ep = read_episode(url, index)
        found = [(index, *r) for r in find_revisits(ep["actions"], spec) if r[0] + 1 >= sampler.k]
        if found:
            cases += found
            episodes[index] = ep
    if not cases:
        return {"skipped": f"no look-away-and-back excursion in {url} (record one: worldsim generate policy=lookback)"}
    picks = [cases[i] for i in sorted(set(np.linspace(0, len(cases) - 1, min(count, len(cases))).round().astype(int)))]
    rows: dict[str, list[float]] = {}
    for j, (index, leave, far, back) in enumerate(picks):
        ep = episodes[index]
        made = dream_after(sampler, ep["frames"], ep["actions"], leave, steps, seed + j, stop=back)
        for name, value in revisit_psnrs(made, ep["frames"], leave, far, back).items():
            rows.setdefault(name, []).append(value)
        if tick:
            tick()
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in rows.items()}
    out["far_beats_copy_last"] = float(np.mean(np.array(rows["far_model_psnr"]) > np.array(rows["far_copy_last_psnr"])))
    out["return_at_least_20db"] = float(np.mean(np.array(rows["return_model_psnr"]) >= 20.0))
    out.update(excursions=len(picks), found=len(cases), context_frames=ctx,
               longest_excursion=int(max(b - lv for _, lv, _, b in picks)))
    return out
