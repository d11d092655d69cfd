"""World model: data windows, VAE, DiT, flow, checkpoints, training (exact resume, DDP), sampling, HF text, CLI errors.

Everything runs on CPU with tiny stores (32 px, a few short episodes) and tiny networks, built once per module.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from wm_helpers import TINY_VAE, one_line_error, tiny_store, train_args

from store import StoreError
from store.windows import WindowReader
from worldsim.cli import main as cli
from worldsim.model import checkpoint as C
from worldsim.model import dit as dit_module
from worldsim.model.dit import Attention, DiT, DiTConfig, rope_3d
from worldsim.model.flow import FlowConfig, sample, training_targets
from worldsim.model.frames import to_model, to_uint8
from worldsim.model.sampler import WorldSampler
from worldsim.model.vae import VAEConfig, VideoVAE, load_vae
from worldsim.model.world_model import ModelSpec, TextConfig, WorldModel
from worldsim.train.data import StoreSet, batches, make_loader

HELPERS = Path(__file__).with_name("wm_helpers.py")

# tiny tensors gain nothing from threads, and on shared cores OpenMP threads spin against other processes
pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]


# -- fixtures: built once per module ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two voxel stores of one game at two resolutions: 32x32 (3 episodes) and 32 high x 48 wide (2 episodes)."""
    root = tmp_path_factory.mktemp("stores")
    a = tiny_store(root / "s32", episodes=3, seed=0)
    b = tiny_store(root / "s48", width=48, episodes=2, seed=1)
    return {"square": root / "s32", "wide": root / "s48", "square_attrs": a, "wide_attrs": b}


@pytest.fixture(scope="module")
def vae_run(stores, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "run"
    code = cli(["train-vae", f"store={stores['square']}", f"out={out}", "steps=3", "batch_size=4", "log_every=1",
                "eval_every=3", "save_every=3", "val_windows=4", "warmup=1", "device=cpu", *TINY_VAE])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def dit_run(stores, vae_run, tmp_path_factory):
    """Run A of the resume test: 4 straight steps, logged every step (bf16, the default precision)."""
    out = tmp_path_factory.mktemp("dit") / "A"
    assert cli(train_args(stores["square"], vae_run, out, 4)) == 0
    return out


@pytest.fixture(scope="module")
def sampler(dit_run):
    return WorldSampler.load(dit_run)


# -- 1. data --------------------------------------------------------------------------------------------------------

def test_train_and_val_split_by_episode(stores):
    url = str(stores["square"])
    train, val, every = (StoreSet([url], 4, split, 1) for split in ("train", "val", "all"))
    assert train.infos[0].episodes == [0, 1] and val.infos[0].episodes == [2] and every.infos[0].episodes == [0, 1, 2]
    assert len(train) + len(val) == len(every) > 0
    train_eps = {train.read(i)["episode"] for i in range(len(train))}
    val_eps = {val.read(i)["episode"] for i in range(len(val))}
    assert train_eps == {0, 1} and val_eps == {2}  # disjoint: no window of a held-out episode is trained on
    with pytest.raises(StoreError, match="all held out"):
        StoreSet([url], 4, "train", 3)
    with pytest.raises(StoreError, match="val_episodes > 0"):
        StoreSet([url], 4, "val", 0)


def test_batches_are_bucketed_by_resolution(stores):
    both = StoreSet([str(stores["square"]), str(stores["wide"])], 4, "train", 1)
    assert both.resolutions() == [(32, 32), (32, 48)]
    seen = set()
    for batch in islice(batches(both, 3, seed=0), 40):
        frames = batch["frames"]
        assert frames.dtype == torch.uint8 and frames.shape[:2] == (3, 4) and frames.shape[-1] == 3
        seen.add(tuple(frames.shape[2:4]))  # one (H, W) per batch: np.stack would fail otherwise
        assert batch["actions"].shape == (3, 4, both.action_dim) and len(batch["captions"]) == 3
    assert seen == {(32, 32), (32, 48)}
    # A bucket is drawn by its total quality weight, or unweighted by its window count: compare the drawn share of
    # wide batches with both expectations, computed from the stores themselves.
    weight = {b.width: b.weight.sum() for r in both.readers for b in r.buckets}
    count = {b.width: len(b.starts) for r in both.readers for b in r.buckets}
    expect = {True: weight[48] / sum(weight.values()), False: count[48] / sum(count.values())}
    share = {w: np.mean([b["frames"].shape[3] == 48 for b in islice(batches(both, 1, seed=1, weighted=w), 200)])
             for w in (True, False)}
    for w in (True, False):
        assert abs(share[w] - expect[w]) < 0.12, (w, share, expect)


def test_batches_are_a_pure_function_of_seed_and_step(stores):
    s = StoreSet([str(stores["square"]), str(stores["wide"])], 4, "train", 1)
    first = list(islice(batches(s, 2, seed=7), 4))
    again = list(islice(batches(s, 2, seed=7), 4))
    later = next(batches(s, 2, seed=7, start_step=2))  # a resumed run starts at batch 2
    other = next(batches(s, 2, seed=8))
    with_worker = make_loader(s, 2, seed=7, workers=1)  # a spawned DataLoader worker makes the same batches
    from_worker = [next(with_worker) for _ in range(4)]
    del with_worker
    for a, b, c in zip(first, again, from_worker):
        for key in ("frames", "actions", "is_last", "weights"):
            assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), key
        assert a["captions"] == b["captions"] == c["captions"] and a["starts"] == c["starts"]
    assert torch.equal(later["frames"], first[2]["frames"]) and later["starts"] == first[2]["starts"]
    assert (other["episodes"], other["starts"]) != (first[0]["episodes"], first[0]["starts"])


def test_window_longer_than_every_episode_is_a_store_error(stores):
    with pytest.raises(StoreError, match=r"no window of 50 frames.*longest episode"):
        StoreSet([str(stores["square"])], 50)
    with pytest.raises(StoreError, match="no store given"):
        StoreSet([], 4)


def test_to_model_and_to_uint8_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 12, 3), dtype=np.uint8)
    x = to_model(frames)
    assert x.shape == (2, 3, 3, 8, 12) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert float(to_model(np.full((1, 1, 3), 255, np.uint8)).max()) == 1.0
    assert float(to_model(np.zeros((1, 1, 3), np.uint8)).min()) == -1.0
    back = to_uint8(x)
    assert back.dtype == np.uint8 and np.array_equal(back, frames)
    assert np.array_equal(to_uint8(to_model(torch.from_numpy(frames))), frames)


# -- 2. VAE ---------------------------------------------------------------------------------------------------------

def _vae(temporal: int) -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(VAEConfig(latent_channels=4, channels=[8, 16, 16], temporal=temporal)).eval()


@pytest.mark.parametrize("temporal", [1, 4])
def test_vae_shapes(temporal):
    vae = _vae(temporal)
    x = torch.rand(2, 8, 3, 32, 48) * 2 - 1  # (B, T, 3, H, W)
    z = vae.encode(x)
    assert z.shape == (2, 8 // temporal, 4, 8, 12)
    y = vae.decode(z)
    assert y.shape == x.shape and float(y.abs().max()) <= 1.0
    with torch.no_grad():
        recon, kl = vae(x)
    assert recon.shape == x.shape and kl.ndim == 0 and float(kl) >= 0


def test_temporal_vae_is_causal():
    vae = _vae(4)
    x = torch.rand(1, 8, 3, 32, 32) * 2 - 1
    changed = x.clone()
    changed[:, 4:] = torch.rand(1, 4, 3, 32, 32) * 2 - 1  # frames of latent frame 1 only
    z, z2 = vae.encode(x), vae.encode(changed)
    assert torch.equal(z[:, 0], z2[:, 0])  # latent frame 0 depends on frames 0..3 only
    assert not torch.allclose(z[:, 1], z2[:, 1])
    early = x.clone()
    early[:, 3] = -early[:, 3]
    assert not torch.allclose(vae.encode(early)[:, 0], z[:, 0])  # ... and does depend on frame 3


def test_vae_rejects_bad_sizes():
    with pytest.raises(ValueError, match="not divisible by the VAE's spatial factor 4"):
        _vae(1).encode(torch.zeros(1, 1, 3, 30, 32))
    with pytest.raises(ValueError, match="not a multiple of the VAE's temporal factor 4"):
        _vae(4).encode(torch.zeros(1, 6, 3, 32, 32))
    with pytest.raises(ValueError, match="power of 2"):
        VAEConfig(spatial=3)
    with pytest.raises(ValueError, match="temporal must be 1 or 4"):
        VAEConfig(temporal=2)
    with pytest.raises(ValueError, match="needs 3 widths"):
        VAEConfig(channels=[8, 16])


def test_train_vae_writes_checkpoints_and_metrics(vae_run):
    rows = _rows(vae_run)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    val = [r["val_psnr"] for r in rows if "val_psnr" in r]
    assert len(val) == 1 and math.isfinite(val[0]) and val[0] > 0
    ck = C.resolve(vae_run)
    assert ck.name == "step_0000003" and (vae_run / "checkpoints" / "latest").read_text().strip() == ck.name
    assert {p.name for p in ck.iterdir()} == {"model.safetensors", "optim.safetensors", "meta.json"}
    meta = C.load_meta(ck)
    assert meta["kind"] == "vae" and meta["step"] == 3 and meta["val_psnr"] == pytest.approx(val[0], abs=1e-5)


def test_load_vae_round_trip(vae_run, stores):
    ck = C.resolve(vae_run)
    vae, meta = load_vae(vae_run)
    assert not vae.training and meta["digest"] == C.digest(ck) and meta["path"] == str(ck)
    saved = C.load_tensors(ck, "model")
    state = vae.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in saved)
    assert not torch.equal(vae.latent_std, torch.ones_like(vae.latent_std))  # latent statistics were measured
    assert asdict(vae.cfg) == meta["vae"] and vae.cfg.channels == [8, 16, 16]
    again, _ = load_vae(ck)  # a checkpoint folder works as well as the run directory
    frames = torch.from_numpy(WindowReader(str(stores["square"]), 2).read(0)["frames"])
    x = to_model(frames)[None]
    assert torch.equal(vae.encode(x), again.encode(x))


# -- 3. DiT ---------------------------------------------------------------------------------------------------------

def _cond(b: int, t: int, actions: int = 3, text_dim: int = 16, length: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[:, length - 2 :] = False  # padded text tokens
    return {"actions": torch.randn(b, t, actions, generator=g), "action_mask": torch.ones(b, t, dtype=torch.bool),
            "text": torch.randn(b, length, text_dim, generator=g), "text_mask": mask,
            "text_pooled": torch.randn(b, text_dim, generator=g)}


def _dit(attention: str, randomize: bool = True) -> DiT:
    torch.manual_seed(0)
    net = DiT(DiTConfig(width=48, depth=2, heads=2, attention=attention), latent_channels=4, action_dim=3,
              text_dim=16).eval()
    if randomize:  # the adaLN-Zero / zero output init makes the output 0: give every weight a value to test flow
        with torch.no_grad():
            for p in net.parameters():
                if not p.any():
                    p.normal_(0, 0.05)
    return net


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_dit_output_shape(attention):
    net = _dit(attention)
    kinds = [blk.kind for blk in net.blocks]
    assert kinds == (["full", "full"] if attention == "full" else ["spatial", "temporal"])
    for shape in [(2, 3, 4, 8, 8), (1, 2, 4, 8, 12)]:  # any duration and size (3D RoPE)
        x = torch.randn(shape)
        v = net(x, torch.rand(shape[:2]), _cond(shape[0], shape[1]))
        assert v.shape == x.shape and v.dtype == torch.float32 and v.abs().sum() > 0
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        net(torch.randn(1, 1, 4, 7, 8), torch.rand(1, 1), _cond(1, 1))


def test_factorized_attention_is_causal_in_time():
    x = torch.randn(1, 4, 4, 8, 8)
    t, cond = torch.rand(1, 4), _cond(1, 4)
    future = x.clone()
    future[:, 2:] = torch.randn(1, 2, 4, 8, 8)
    causal = _dit("factorized")
    v, v2 = causal(x, t, cond), causal(future, t, cond)
    assert torch.allclose(v[:, :2], v2[:, :2], atol=1e-6)  # the past never sees the future
    assert not torch.allclose(v[:, 2:], v2[:, 2:])
    full = _dit("full")
    assert not torch.allclose(full(x, t, cond)[:, :2], full(future, t, cond)[:, :2])  # full attention does


def test_adaln_zero_init_gives_zero_output():
    net = _dit("full", randomize=False)
    assert all(not blk.ada.weight.any() and not blk.ada.bias.any() for blk in net.blocks)
    x = torch.randn(2, 3, 4, 8, 8)
    v = net(x, torch.rand(2, 3), _cond(2, 3))
    assert v.shape == x.shape and torch.equal(v, torch.zeros_like(v))


def test_unknown_preset_and_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"unknown model preset 'XXL'.*tiny"):
        DiT(DiTConfig(preset="XXL"), 4, 3, 16)
    with pytest.raises(ValueError, match="even head size"):
        DiTConfig(width=48, heads=5).resolved()
    with pytest.raises(ValueError, match="full, causal or factorized"):
        DiTConfig(attention="axial").resolved()


# -- 4. flow --------------------------------------------------------------------------------------------------------

def test_training_targets():
    cfg = FlowConfig()
    x0 = torch.randn(32, 6, 4, 4, 4)
    x_t, t, target, loss_mask = training_targets(x0, cfg, torch.Generator().manual_seed(0))
    assert x_t.shape == target.shape == x0.shape and t.shape == loss_mask.shape == (32, 6)
    assert loss_mask.dtype == torch.bool and (~loss_mask).any() and loss_mask.all(dim=1).any()
    assert loss_mask.any(dim=1).all()  # every clip has a frame to learn from
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert float(t[~loss_mask].max()) <= cfg.context_noise  # context frames: clean up to a little noise
    assert torch.allclose(x_t, x0 + t[:, :, None, None, None] * target, atol=1e-5)  # x_t = (1-t) x0 + t eps
    again = training_targets(x0, cfg, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip((x_t, t, target, loss_mask), again))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampler_keeps_context_frames(method):
    shape = (2, 5, 3, 4, 4)
    context = torch.randn(shape)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, :2] = True  # a prefix
    mask[1, 4] = True  # a suffix
    seen = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return x - 0.5

    out = sample(velocity, shape, context, mask, 4, torch.Generator().manual_seed(0), method=method, context_t=0.02)
    assert out.shape == shape and torch.isfinite(out).all()
    assert torch.equal(out[mask], context[mask])
    assert not torch.allclose(out[~mask], context[~mask])
    assert len(seen) == (4 if method == "euler" else 7)  # heun: one more evaluation per step but the last
    assert all(torch.allclose(t[mask], torch.tensor(0.02)) for t in seen)
    assert float(seen[0][~mask].min()) == 1.0  # generated frames start from pure noise
    other = sample(velocity, shape, context, mask, 4, torch.Generator().manual_seed(0),
                   method="heun" if method == "euler" else "euler")
    assert not torch.allclose(out, other)
    with pytest.raises(ValueError, match="euler or heun"):
        sample(velocity, shape, None, None, 4, torch.Generator(), method="rk4")


# -- 5. checkpoints -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("crash_at", [1, 2])  # the rename of the checkpoint folder, or of the `latest` file
def test_checkpoint_save_is_atomic(tmp_path, monkeypatch, crash_at):
    run = tmp_path / "run"
    first = {"model": {"w": torch.arange(6.0).view(2, 3)}}
    C.save(run, 1, first, {"kind": "test"})
    real_replace, calls = os.replace, []

    def crash(src, dst):
        calls.append(dst)
        if len(calls) == crash_at:
            raise OSError("killed mid-save")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed mid-save"):
        C.save(run, 2, {"model": {"w": torch.zeros(2, 3)}}, {"kind": "test"})
    monkeypatch.undo()
    ck = C.resolve(run)
    assert ck.name == "step_0000001" and C.latest(run) == ck and C.load_meta(ck)["step"] == 1
    assert torch.equal(C.load_tensors(ck, "model")["w"], first["model"]["w"])
    assert (run / "checkpoints" / "step_0000002").exists() == (crash_at == 2)
    C.save(run, 2, {"model": {"w": torch.zeros(2, 3)}}, {"kind": "test"})  # the next save recovers
    assert C.resolve(run).name == "step_0000002"


def test_resolve_accepts_run_or_checkpoint_and_names_bad_paths(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2):
        C.save(run, step, {"model": {"w": torch.full((3,), float(step))}}, {"kind": "test"})
    ck = C.resolve(run)
    assert ck == run / "checkpoints" / "step_0000002" and C.resolve(ck) == ck
    assert C.resolve(run / "checkpoints" / "step_0000001").name == "step_0000001"
    with pytest.raises(C.CheckpointError, match="no checkpoint at .*missing"):
        C.resolve(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(C.CheckpointError, match="neither a run directory"):
        C.resolve(tmp_path / "empty")
    with pytest.raises(C.CheckpointError, match="ema.safetensors is missing"):
        C.load_tensors(ck, "ema")
    f = ck / "model.safetensors"
    f.write_bytes(f.read_bytes()[:20])  # truncated
    with pytest.raises(C.CheckpointError, match="model.safetensors is corrupt or truncated"):
        C.load_tensors(ck, "model")
    (ck / "meta.json").write_text("{not json")
    with pytest.raises(C.CheckpointError, match="meta.json is unreadable"):
        C.load_meta(ck)
    (run / "checkpoints" / "latest").write_text("step_0000009\n")
    with pytest.raises(C.CheckpointError, match="names step_0000009, which is missing"):
        C.resolve(run)
    assert C.latest(run) is None


def test_optimizer_round_trip_without_pickle(tmp_path):
    def setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
        return net, torch.optim.AdamW(net.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer, k: int) -> None:
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(k))
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()

    net, opt = setup()
    for k in range(3):
        step(net, opt, k)
    tensors, meta = C.optimizer_tensors(opt)
    C.save(tmp_path, 3, {"model": net.state_dict(), "optim": tensors}, {"optimizer": meta})
    ck = C.resolve(tmp_path)
    assert sorted(p.suffix for p in ck.iterdir()) == [".json", ".safetensors", ".safetensors"]  # nothing pickled
    net2, opt2 = setup()
    net2.load_state_dict(C.load_tensors(ck, "model"))
    C.load_optimizer(opt2, C.load_tensors(ck, "optim"), C.load_meta(ck)["optimizer"])
    groups = [json.loads(json.dumps(o.state_dict()["param_groups"])) for o in (opt, opt2)]  # JSON: tuples -> lists
    assert groups[0] == groups[1]
    for k in range(3, 5):  # continuing from the loaded state is exactly continuing the original
        step(net, opt, k)
        step(net2, opt2, k)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))


# -- 6. training ----------------------------------------------------------------------------------------------------

def test_train_logs_every_step_and_writes_a_checkpoint(dit_run):
    rows = _rows(dit_run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    ck = C.resolve(dit_run)
    assert ck.name == "step_0000004"
    assert {p.name for p in ck.iterdir()} == {"model.safetensors", "ema.safetensors", "optim.safetensors",
                                              "vae.safetensors", "meta.json"}
    assert (dit_run / "samples" / "step_0000004.mp4").is_file()  # the end-of-run preview


def test_resume_continues_exactly(dit_run, stores, vae_run, tmp_path, capsys):
    # bf16 autocast on CPU is bit-deterministic run to run (no atomics), so the default precision is compared
    # exactly; warmup=2 makes the first two learning rates independent of `steps`, which B changes from 2 to 4.
    out = tmp_path / "B"
    assert cli(train_args(stores["square"], vae_run, out, 2)) == 0
    assert "resumed" not in capsys.readouterr().out
    assert cli(train_args(stores["square"], vae_run, out, 4)) == 0
    printed = capsys.readouterr().out
    assert "resumed from step 2" in printed
    a, b = _rows(dit_run), _rows(out)
    assert [r["step"] for r in b] == [1, 2, 3, 4]  # the row of the resumed-from step is kept
    assert [r["loss"] for r in b] == [r["loss"] for r in a]
    final = json.loads(printed.strip().splitlines()[-1])
    a_ck, b_ck = C.resolve(dit_run), C.resolve(out)
    assert final["checkpoint"] == str(b_ck)
    for stem in ("model", "ema"):
        wa, wb = C.load_tensors(a_ck, stem), C.load_tensors(b_ck, stem)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), stem


def test_checkpoint_records_what_it_was_trained_on(dit_run, stores, vae_run):
    meta = C.load_meta(C.resolve(dit_run))
    attrs = stores["square_attrs"]
    assert meta["kind"] == "dit" and meta["step"] == 4
    assert [s["digest"] for s in meta["stores"]] == [attrs["digest"]]
    assert meta["stores"][0]["episodes"] == [0, 1]  # the held-out episode is not trained on
    assert meta["action_spec"] == attrs["action_spec"] and meta["fps"] == attrs["fps"] == 20
    assert meta["vae"]["digest"] == C.digest(C.resolve(vae_run)) and meta["vae"]["config"]["channels"] == [8, 16, 16]
    assert meta["frames"] == 4 and (meta["height"], meta["width"]) == (32, 32)
    spec = ModelSpec.from_dict(meta["spec"])
    assert spec.action_dim == len(attrs["action_spec"]["flat_keys"]) and spec.latent_channels == 4
    assert (spec.dit.width, spec.dit.depth, spec.dit.heads, spec.text.width) == (48, 2, 2, 32)


# -- 7. DDP ---------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("torchrun") is None, reason="the torchrun launcher is not on PATH")
def test_torchrun_module_entry_point(stores, vae_run, tmp_path):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    out = tmp_path / "ddp-cli"
    args = train_args(stores["square"], vae_run, out, 2)
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "worldsim.cli", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step_0000002"]
    assert C.load_meta(C.resolve(out))["step"] == 2


def _torchrun_train(store: Path, vae_run: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """A 2-step `worldsim train` in two data-parallel CPU processes. tests/wm_helpers.py runs `worldsim.cli` as
    __main__ (what `torchrun -m worldsim.cli` does) and then saves each rank's weights (OUT/rank<R>.safetensors), so
    a test can check that gradients were averaged across the ranks."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(HELPERS),
           *train_args(store, vae_run, out, 2, *extra)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_ddp_two_processes_keep_ranks_identical(stores, vae_run, tmp_path):
    # the text encoder's gradients too: it runs in WorldModel.conditioning, outside the DDP-wrapped forward
    out = tmp_path / "ddp"
    r = _torchrun_train(stores["square"], vae_run, out)
    assert [p.name for p in (out / "checkpoints").iterdir() if p.is_dir()] == ["step_0000002"]
    assert json.loads(r.stdout.strip().splitlines()[-1])["checkpoint"] == str(out / "checkpoints" / "step_0000002")
    assert [row["step"] for row in _rows(out)] == [1, 2]  # rank 0 alone writes metrics
    r0, r1 = (C.load_tensors(out, f"rank{k}") for k in (0, 1))
    differ = [k for k in r0 if not torch.equal(r0[k], r1[k])]
    assert not differ, f"parameters differ between ranks: {differ}"
    saved = C.load_tensors(C.resolve(out), "model")
    assert all(torch.equal(saved[k], r0[k]) for k in saved)
    spec = ModelSpec.from_dict(C.load_meta(C.resolve(out))["spec"])
    torch.manual_seed(0)  # what train() does before building the model: the initial weights
    init = WorldModel(spec).state_dict()
    assert not torch.equal(init["text.embed.weight"], r0["text.embed.weight"])  # the text encoder did train


# -- 8. sampler -----------------------------------------------------------------------------------------------------

def _video(n: int, seed: int = 0, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_sampler_modes_shapes(sampler):
    s = sampler
    assert (s.frames, s.window, s.k, s.height, s.width, s.fps) == (4, 4, 1, 32, 32, 20)
    a = s.action_dim
    image, clip = _video(1)[0], _video(2, 1)
    kw = {"steps": 2, "seed": 0}
    got = {
        "t2v": s.t2v("a forest", frames=6, **kw),  # longer than the window: made window by window
        "t2v_wide": s.t2v("a forest", frames=2, height=32, width=48, **kw),
        "t2v_cfg": s.t2v("a forest", frames=2, cfg_text=2.0, cfg_actions=1.5, method="heun", **kw),
        "i2v": s.i2v(image, frames=3, prompt="a forest", **kw),
        "forward": s.extend(clip, 3, "a forest", **kw),
        "backward": s.extend(clip, 3, "a forest", direction="backward", **kw),
        "connect": s.connect(clip, _video(2, 2), frames=2, **kw),
        "loop": s.loop("a forest", frames=3, **kw),
        "edit": s.edit(_video(4, 3), "a desert", strength=0.5, **kw),
        "rollout": s.rollout(clip, np.zeros((5, a), np.float32), **kw),
    }
    expected = {"t2v": 6, "t2v_wide": 2, "t2v_cfg": 2, "i2v": 3, "forward": 5, "backward": 5, "connect": 2,
                "loop": 3, "edit": 4, "rollout": 6}
    for name, video in got.items():
        size = (32, 48) if name == "t2v_wide" else (32, 32)
        assert video.dtype == np.uint8 and video.shape == (expected[name], *size, 3), name
    image_out = s.t2i("a forest", **kw)
    assert image_out.dtype == np.uint8 and image_out.shape == (32, 32, 3)
    assert np.array_equal(got["i2v"][0], image)  # the given frames come back unchanged
    assert np.array_equal(got["forward"][:2], clip) and np.array_equal(got["backward"][-2:], clip)
    assert np.array_equal(got["rollout"][:2], clip)


def test_sampler_seeds(sampler):
    a = sampler.t2v("a forest", frames=2, steps=2, seed=3)
    assert np.array_equal(a, sampler.t2v("a forest", frames=2, steps=2, seed=3))
    assert not np.array_equal(a, sampler.t2v("a forest", frames=2, steps=2, seed=4))
    clip, acts = _video(2), np.zeros((4, sampler.action_dim), np.float32)
    r = sampler.rollout(clip, acts, steps=2, seed=1)
    assert np.array_equal(r, sampler.rollout(clip, acts, steps=2, seed=1))


def test_write_video(sampler, dit_run, tmp_path):
    import imageio.v2 as imageio

    video = sampler.t2v("a forest", frames=5, steps=2)
    path = sampler.write_video(video, tmp_path / "out" / "v.mp4", prompt="a forest", seed=0)
    assert path == tmp_path / "out" / "v.mp4" and path.is_file()
    with imageio.get_reader(path) as reader:
        frames = [f for f in reader]
    assert len(frames) == 5 and frames[0].shape == (32, 32, 3)
    info = json.loads((tmp_path / "out" / "v.mp4.json").read_text())
    assert info["checkpoint_digest"] == sampler.digest == C.digest(C.resolve(dit_run))
    assert info["prompt"] == "a forest" and info["checkpoint"] == 4 and len(info["stores"]) == 1
    assert not list((tmp_path / "out").glob("*.part*"))


def test_sampler_rejects_bad_inputs(sampler, vae_run):
    a = sampler.action_dim
    with pytest.raises(ValueError, match="multiples of 8"):
        sampler.t2v("x", frames=1, height=36, steps=1)
    with pytest.raises(ValueError, match=rf"actions must be \(N, {a}\)"):
        sampler.rollout(_video(2), np.zeros((4, a + 1), np.float32), steps=1)
    with pytest.raises(ValueError, match=rf"actions must be \(frames, {a}\)"):
        sampler.t2v("x", frames=2, actions=np.zeros((2, a - 1), np.float32), steps=1)
    with pytest.raises(ValueError, match="multiples of 8"):
        sampler.extend(_video(2, h=36), 2, steps=1)
    with pytest.raises(ValueError, match="connect makes at most"):
        sampler.connect(_video(1), _video(1), frames=3, steps=1)
    with pytest.raises(ValueError, match="strength"):
        sampler.edit(_video(2), "x", strength=0.0)
    with pytest.raises(ValueError, match="direction"):
        sampler.extend(_video(2), 2, direction="sideways")
    with pytest.raises(C.CheckpointError, match="'vae' checkpoint, not a world-model checkpoint"):
        WorldSampler.load(vae_run)


def test_actions_lead_into_frames():
    """Stored actions[f] are taken after frame f; the model conditions frame f on the action that led into it."""
    spec = ModelSpec(dit=DiTConfig(width=48, depth=2, heads=2), text=TextConfig(width=32, depth=1, heads=2),
                     vocab=["<pad>", "<unk>", "<cls>"], latent_channels=4, action_dim=2, action_scale=[1.0, 4.0])
    acts = torch.arange(16.0).view(1, 8, 2)
    into, mask = WorldModel(spec).frame_actions(acts)
    assert torch.equal(into[0, 0], torch.zeros(2)) and mask.tolist() == [[False] + [True] * 7]
    assert torch.equal(into[0, 3], acts[0, 2] / torch.tensor([1.0, 4.0]))  # scaled to about [-1, 1]
    _, dropped = WorldModel(spec).frame_actions(acts, use_actions=torch.tensor([False]))
    assert not dropped.any()  # classifier-free guidance drops the actions
    spec.temporal = 4  # a temporal VAE: the 4 actions leading into a latent frame's 4 frames, side by side
    grouped, mask4 = WorldModel(spec).frame_actions(acts)
    assert grouped.shape == (1, 2, 8) and mask4.all()
    assert torch.equal(grouped[0, 1, :2], acts[0, 3] / torch.tensor([1.0, 4.0]))


def test_sampler_with_a_temporal_vae():
    """Every mode with a temporal x4 VAE (random weights: shapes and bookkeeping only)."""
    torch.manual_seed(0)
    spec = ModelSpec(dit=DiTConfig(width=48, depth=2, heads=2), text=TextConfig(width=32, depth=1, heads=2),
                     vocab=["<pad>", "<unk>", "<cls>", "a", "forest"], latent_channels=4, temporal=4, action_dim=3)
    vae = VideoVAE(VAEConfig(latent_channels=4, channels=[8, 16, 16], temporal=4))
    meta = {"frames": 16, "height": 32, "width": 32, "fps": 20, "train": {"flow": asdict(FlowConfig())}}
    s = WorldSampler(WorldModel(spec).eval(), vae.eval(), meta, "digest", torch.device("cpu"))
    kw = {"steps": 1}
    image = _video(1)[0]
    assert s.t2v("a forest", frames=6, **kw).shape == (6, 32, 32, 3)
    assert s.t2v("a forest", frames=20, **kw).shape == (20, 32, 32, 3)  # beyond the 16-frame window
    assert s.t2i("a forest", **kw).shape == (32, 32, 3)
    assert np.array_equal(s.i2v(image, frames=1, **kw), image[None])
    assert s.i2v(image, frames=6, **kw).shape == (6, 32, 32, 3)
    assert s.extend(_video(4), 6, **kw).shape == (10, 32, 32, 3)
    assert s.extend(_video(4), 6, direction="backward", **kw).shape == (10, 32, 32, 3)
    assert s.connect(_video(4), _video(4, 1), 6, **kw).shape == (6, 32, 32, 3)
    assert s.loop("a forest", frames=8, **kw).shape == (8, 32, 32, 3)
    assert s.edit(_video(8), "a forest", **kw).shape == (8, 32, 32, 3)
    assert s.rollout(_video(4), np.zeros((10, 3), np.float32), **kw).shape == (11, 32, 32, 3)
    with pytest.raises(ValueError, match="rollout needs at least 4 context"):
        s.rollout(_video(3), np.zeros((10, 3), np.float32), **kw)


# -- 9. pretrained (HF) text encoder --------------------------------------------------------------------------------

def test_hf_text_encoder_from_a_local_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "ball", "snowy", "forest", "at", "night"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                                          num_attention_heads=2, intermediate_size=64,
                                                          max_position_embeddings=32))
    bert.save_pretrained(folder)
    spec = ModelSpec(dit=DiTConfig(width=48, depth=2, heads=2), text=TextConfig(encoder="hf", path=str(folder)),
                     latent_channels=4, action_dim=3)
    model = WorldModel(spec)
    assert not any(k.startswith("hf") for k in model.state_dict())  # frozen and not saved in checkpoints
    cond = model.conditioning(["a red ball", "snowy forest at night", ""], torch.randn(3, 4, 3))
    length = cond["text"].shape[1]
    assert cond["text"].shape == (3, length, 32) and cond["text_mask"].shape == (3, length)
    assert cond["text_mask"].dtype == torch.bool and cond["text_mask"].sum(1).tolist() == [5, 6, 2]  # + CLS, SEP
    assert cond["text_pooled"].shape == (3, 32)
    assert cond["actions"].shape == (3, 4, 3) and cond["action_mask"].tolist() == [[False, True, True, True]] * 3
    v = model(torch.randn(3, 4, 4, 8, 8), torch.rand(3, 4), cond)
    assert v.shape == (3, 4, 4, 8, 8)
    with pytest.raises(ValueError, match="not a local transformers model folder"):
        WorldModel(ModelSpec(text=TextConfig(encoder="hf", path=str(tmp_path / "nothing")), action_dim=3))
    with pytest.raises(ValueError, match="needs text.path"):
        WorldModel(ModelSpec(text=TextConfig(encoder="hf"), action_dim=3))


# -- 10. CLI errors -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def temporal_vae(tmp_path_factory):
    """An (untrained) temporal x4 VAE checkpoint: enough for the frames check."""
    cfg = VAEConfig(latent_channels=4, channels=[8, 16, 16], temporal=4)
    out = tmp_path_factory.mktemp("vae4") / "run"
    C.save(out, 1, {"model": VideoVAE(cfg).state_dict()}, {"kind": "vae", "vae": asdict(cfg)})
    return out


def test_train_cli_errors_are_one_line(capsys, stores, vae_run, dit_run, temporal_vae, tmp_path):
    store = stores["square"]
    err = one_line_error(capsys, cli, train_args(tmp_path / "no-store", vae_run, tmp_path / "o1", 1))
    assert "no-store" in err
    (tmp_path / "empty").mkdir()
    err = one_line_error(capsys, cli, train_args(store, tmp_path / "empty", tmp_path / "o2", 1))
    assert "empty" in err and "checkpoint" in err
    err = one_line_error(capsys, cli, train_args(store, dit_run, tmp_path / "o3", 1))
    assert "not a VAE" in err
    err = one_line_error(capsys, cli, [*train_args(store, temporal_vae, tmp_path / "o4", 1), "frames=6"])
    assert "frames=6 is not a multiple of the VAE's temporal factor 4" in err
    err = one_line_error(capsys, cli, [*train_args(store, vae_run, tmp_path / "o5", 1), "model=nonexistent"])
    assert "nonexistent" in err
    err = one_line_error(capsys, cli, [*train_args(store, vae_run, tmp_path / "o6", 1), "model.preset=XXL"])
    assert "unknown model preset" in err
    err = one_line_error(capsys, cli, train_args(store, vae_run, tmp_path / "o7", 0))
    assert "steps must be positive" in err
    assert not any((tmp_path / f"o{k}" / "checkpoints").exists() for k in range(1, 8))


# -- latent stores ----------------------------------------------------------------------------------------------------

def test_latent_store_trains_like_the_frame_store(stores, vae_run, dit_run, tmp_path, capsys):
    """cache-latents once, then training on the latent store gives (to float16 precision) the same losses as
    encoding frames each step, and records both digests; latents of another VAE are refused."""
    lat = tmp_path / "lat"
    assert cli(["cache-latents", f"store={stores['square']}", f"vae={vae_run}", f"out={lat}", "device=cpu"]) == 0
    reader = WindowReader(str(lat), 4)
    w = reader.read(0)
    assert "frames" not in w and w["latents"].dtype == np.float16 and w["latents"].shape[0] == 4
    assert reader.attrs["latents"]["source_digest"] == stores["square_attrs"]["digest"]
    out = tmp_path / "dit"
    assert cli(train_args(lat, vae_run, out, 4)) == 0
    ours, ref = _rows(out), _rows(dit_run)
    assert [r["step"] for r in ours] == [1, 2, 3, 4]
    np.testing.assert_allclose([r["loss"] for r in ours], [r["loss"] for r in ref], rtol=2e-3)
    meta = C.load_meta(C.resolve(out))
    assert meta["stores"][0]["source_digest"] == stores["square_attrs"]["digest"]
    other = tmp_path / "vae2"
    assert cli(["train-vae", f"store={stores['square']}", f"out={other}", "steps=1", "batch_size=2", "val_windows=2",
                "device=cpu", "seed=1", *TINY_VAE]) == 0
    assert "latents of another VAE" in one_line_error(capsys, cli, train_args(lat, other, tmp_path / "x", 1))
    argv = ["cache-latents", f"store={stores['square']}", f"vae={vae_run}", f"out={stores['wide']}"]
    assert "not a latent store" in one_line_error(capsys, cli, argv)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(stores, vae_run, tmp_path, capsys,
                                                                          monkeypatch):
    import worldsim.train.train_dit as T

    out = tmp_path / "nan"
    assert cli(train_args(stores["square"], vae_run, out, 2, "save_every=2")) == 0
    good = C.resolve(out)
    real = T.training_targets

    def poisoned(*args):
        x_t, t, target, mask = real(*args)
        return x_t, t, target * float("nan"), mask

    monkeypatch.setattr(T, "training_targets", poisoned)
    capsys.readouterr()
    assert cli(train_args(stores["square"], vae_run, out, 4, "save_every=2")) == 1  # a result, not bad input
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar: one line, no traceback
    assert "Traceback" not in err and "loss became nan at step 3" in last and str(good) in last, err
    assert C.resolve(out) == good and C.load_meta(good)["step"] == 2  # nothing written after the bad step


def test_stores_of_different_games_are_refused(stores, tmp_path):
    from datagen.job import run
    from datagen.rollout import Job

    physics = tmp_path / "physics"
    run(Job(env_id="worldsim/Physics-v0", env_kwargs={"task": "observe"}, width=32, height=32, episodes=1, steps=6),
        str(physics), workers=1)
    with pytest.raises(StoreError, match="another action spec"):
        StoreSet([str(stores["square"]), str(physics)], 4)


def test_changing_the_actions_changes_the_prediction():
    net = _dit("full")
    x, t = torch.randn(1, 3, 4, 4, 4), torch.full((1, 3), 0.5)
    a, b = _cond(1, 3), _cond(1, 3)
    b["actions"] = b["actions"] + 1.0
    with torch.no_grad():
        va, vb = net(x, t, a), net(x, t, b)
    assert not torch.allclose(va, vb, atol=1e-4)
    b["action_mask"] = torch.zeros(1, 3, dtype=torch.bool)  # masked actions: the action values no longer matter
    c = dict(b, actions=torch.zeros_like(b["actions"]))
    with torch.no_grad():
        assert torch.allclose(net(x, t, b), net(x, t, c))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampler_with_an_oracle_velocity_recovers_its_target(method):
    """With the exact velocity (x_t - x_0) / t, integrating from noise lands on x_0 (and keeps the context)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 5, 4, 6, 6, generator=g)

    def oracle(x, t):
        return (x - x0) / t[:, :, None, None, None]

    out = sample(oracle, tuple(x0.shape), None, None, steps=3, g=torch.Generator().manual_seed(1), method=method,
                 shift=2.0)
    assert torch.allclose(out, x0, atol=1e-4)
    ctx = torch.zeros(2, 5, dtype=torch.bool)
    ctx[:, 0] = True
    out = sample(oracle, tuple(x0.shape), x0, ctx, steps=4, g=torch.Generator().manual_seed(2), method=method)
    assert torch.allclose(out, x0, atol=1e-4)


@pytest.mark.parametrize("group", [0, 1, 2, 3, 5])
def test_teacher_forcing_equals_denoising_each_frame_from_its_clean_past(group, monkeypatch):
    """forward_teacher gives frame j what a dreamed step gives it: the clean frames before j as context, whatever
    the number of query frames per attention call (0: one call under the full mask)."""
    monkeypatch.setattr(dit_module, "TEACHER_GROUP", group)
    torch.manual_seed(0)
    net = DiT(DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True), latent_channels=4,
              action_dim=3, text_dim=16).eval()
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    b, t = 2, 5
    clean, x = torch.randn(b, t, 4, 4, 4), torch.randn(b, t, 4, 4, 4)
    t_clean, t_noisy = torch.rand(b, t) * 0.1, torch.rand(b, t)
    cond = _cond(b, t)
    with torch.no_grad():
        v = net.forward_teacher(clean, t_clean, x, t_noisy, cond)
        for j in range(t):
            xin = torch.cat([clean[:, :j], x[:, j : j + 1]], 1)
            tin = torch.cat([t_clean[:, :j], t_noisy[:, j : j + 1]], 1)
            part = {**cond, "actions": cond["actions"][:, : j + 1], "action_mask": cond["action_mask"][:, : j + 1]}
            assert torch.allclose(net(xin, tin, part)[:, -1], v[:, j], atol=1e-5)
    with pytest.raises(ValueError, match="attention=causal"):
        _dit("full").forward_teacher(clean, t_clean, x, t_noisy, cond)


@pytest.mark.parametrize("group", [1, 2, 3])
def test_teacher_attention_in_groups_has_the_masked_gradients(group):
    """Attention.teacher computed a few query frames at a time trains exactly as one call under the full mask."""
    torch.manual_seed(0)
    att, frames, n = Attention(16, 2), 5, 3
    x = torch.randn(2, 2 * frames * n, 16)
    cos, sin = rope_3d(frames, 1, n, 8, 10000.0, torch.device("cpu"))
    rope = (torch.cat([cos, cos]), torch.cat([sin, sin]))
    outs = []
    for g in (0, group):
        xg = x.clone().requires_grad_(True)
        att.zero_grad()
        y = att.teacher(xg, rope, frames, n, g)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append((y.detach(), xg.grad, att.q.weight.grad.clone(), att.kv.weight.grad.clone()))
    for ref, got in zip(*outs):
        assert torch.allclose(ref, got, atol=1e-5)


def test_delta_prediction_starts_as_copying_the_last_frame():
    """An untrained delta model (zero output) predicts the previous frame: copy-last is where training starts."""
    spec = ModelSpec(dit=DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True),
                     text=TextConfig(width=16, depth=1, heads=2), vocab=["<pad>", "<unk>", "<cls>", "a"],
                     latent_channels=4, action_dim=3, action_scale=[1.0] * 3, prediction="delta")
    model = WorldModel(spec).eval()
    ctx = torch.randn(1, 3, 4, 4, 4)
    given = torch.tensor([[True, True, False]])
    cond = model.conditioning(["a"], torch.zeros(1, 3, 3))
    with torch.no_grad():
        out = sample(lambda x, t: model(x, t, cond), tuple(ctx.shape), ctx, given, steps=3,
                     g=torch.Generator().manual_seed(0), context_t=0.0)
        assert torch.allclose(out[:, 2], ctx[:, 1], atol=1e-5)
        x0 = model(torch.randn(1, 3, 4, 4, 4), torch.full((1, 3), 0.5), {**cond, "prev": ctx[:, 0]}, x0=True)
    assert torch.allclose(x0[:, 0], ctx[:, 0])  # the first frame's base is cond["prev"]


@pytest.mark.parametrize("warp", [False, True])
def test_teacher_forced_delta_model_learns_to_follow_its_actions(warp):
    """Latent frames that move left or right by one column as the action says: a tiny teacher-forced, delta-predicting
    model trained for 150 steps predicts the next frame under the action it is given, not under the other one (fixed
    seed): the objective and the action conditioning together learn a game's dynamics, not only copying. With the
    action-conditioned warp, the warp itself learns the move: half a unit of the normalised grid per column."""
    from worldsim.train.train_dit import TrainConfig, batch_loss

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    cfg = TrainConfig(frames=4, batch_size=8, p_drop_text=0.0, p_drop_actions=0.1, precision="fp32",
                      model=DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True, warp=warp),
                      flow=FlowConfig(objective="teacher_forcing", prediction="delta", p_pure_noise=0.5))
    spec = ModelSpec(dit=cfg.model, text=TextConfig(width=16, depth=1, heads=2), vocab=["<pad>", "<unk>", "<cls>"],
                     latent_channels=4, action_dim=1, action_scale=[1.0], prediction="delta")
    model = WorldModel(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def episodes(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 4, 4, 4, 4) latents and (n, 4, 1) actions: frame t + 1 is frame t rolled by actions[t] columns."""
        z = [torch.randn(n, 4, 4, 4, generator=gen)]
        a = torch.randint(0, 2, (n, 4, 1), generator=gen).float() * 2 - 1
        for t in range(3):
            z.append(torch.stack([zi.roll(int(ai), dims=-1) for zi, ai in zip(z[-1], a[:, t, 0])]))
        return torch.stack(z, 1), a

    for _ in range(150):
        z, a = episodes(8, g)
        loss = batch_loss(cfg, model, model, z, {"captions": [""] * 8, "prompts": [""] * 8, "actions": a}, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    z, a = episodes(64, torch.Generator().manual_seed(1))
    t = torch.full((64, 4), 0.02)
    t[:, -1] = 1.0  # the last frame from pure noise: one sampling step, the model's estimate of the next frame
    x = z.clone()
    x[:, -1] = torch.randn(x[:, -1].shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        err = {}
        for name, acts in (("given", a), ("flipped", torch.cat([a[:, :2], -a[:, 2:]], 1))):
            pred = model(x, t, model.conditioning([""] * 64, acts), x0=True)[:, -1]
            err[name] = float((pred - z[:, -1]).pow(2).mean())
    copy = float((z[:, -2] - z[:, -1]).pow(2).mean())
    assert err["given"] < 0.5 * copy and err["given"] < 0.5 * err["flipped"], (err, copy)
    if warp:  # frame t + 1 at column c is frame t at column c - a: the grid samples x - a * (2 / 4 columns)
        with torch.no_grad():
            shift = model.dit.warp(torch.tensor([[1.0], [-1.0]]))[:, 2]  # the x translation of theta
        assert shift[0] < -0.25 and shift[1] > 0.25, shift


def test_self_forcing_trains_on_the_models_own_context():
    """flow.self_forcing: the context frames (after the first) of the chosen windows are the model's own one-step
    predictions; the loss is finite, differentiable, deterministic for a seed, and differs from teacher forcing on
    the engine's frames; with memory, memories are recalled from those predictions."""
    from worldsim.train.train_dit import TrainConfig, batch_loss

    def run(share: float) -> tuple[float, torch.Tensor]:
        torch.manual_seed(0)
        cfg = TrainConfig(frames=4, batch_size=4, p_drop_text=0.0, p_drop_actions=0.0, precision="fp32",
                          model=DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True, warp=True,
                                          memory=2),
                          flow=FlowConfig(objective="teacher_forcing", prediction="delta", p_pure_noise=0.5,
                                          self_forcing=share))
        spec = ModelSpec(dit=cfg.model, text=TextConfig(width=16, depth=1, heads=2),
                         vocab=["<pad>", "<unk>", "<cls>"], latent_channels=4, action_dim=1, action_scale=[1.0],
                         prediction="delta")
        model = WorldModel(spec)
        with torch.no_grad():  # a fresh model predicts "copy the last frame": perturb it so its predictions differ
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        gen = torch.Generator().manual_seed(2)
        z, past = torch.randn(4, 4, 4, 4, 4, generator=gen), torch.randn(4, 2, 4, 4, 4, generator=gen)
        batch = {"captions": [""] * 4, "prompts": [""] * 4, "actions": torch.randn(4, 4, 1, generator=gen),
                 "past_actions": torch.randn(4, 2, 1, generator=gen), "past_valid": torch.ones(4, 2, dtype=torch.bool)}
        loss = batch_loss(cfg, model, model, z, batch, torch.Generator().manual_seed(3), past)
        loss.backward()
        grad = model.dit.patch_in.weight.grad.clone()
        return float(loss.detach()), grad

    base, forced, again = run(0.0), run(1.0), run(1.0)
    assert np.isfinite(forced[0]) and forced[1].abs().sum() > 0
    assert forced[0] == again[0] and torch.equal(forced[1], again[1])
    assert forced[0] != base[0]


def test_self_forcing_depth_is_the_rollout_in_jacobi_passes():
    """flow.self_forcing_depth=k: k passes, each predicting the window from the last one's predictions; a frame-causal
    model's context after k passes matches the step-by-step rollout up to frame k (each frame one step from pure
    noise, from the model's own frames before it), so depth T - 2 and T - 1 differ in the last frame only, and
    depth 1 differs from depth 2 from the second dreamed frame on; depths beyond T - 1 change nothing."""
    from worldsim.train.train_dit import TrainConfig, own_context

    nt = 5
    cfg = TrainConfig(frames=nt, batch_size=2, precision="fp32",
                      model=DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True),
                      flow=FlowConfig(objective="teacher_forcing", prediction="delta", self_forcing=1.0))
    spec = ModelSpec(dit=cfg.model, text=TextConfig(width=16, depth=1, heads=2), vocab=["<pad>", "<unk>", "<cls>"],
                     latent_channels=4, action_dim=1, action_scale=[1.0], prediction="delta")
    model = WorldModel(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, nt, 4, 4, 4, generator=gen)
    t_clean = torch.full((2, nt), 0.05)
    clean = 0.95 * z + 0.05 * torch.randn(z.shape, generator=gen)
    cond = model.conditioning(["", ""], torch.randn(2, nt, 1, generator=gen), torch.ones(2, dtype=torch.bool))

    def context(depth: int) -> torch.Tensor:
        c = replace(cfg, flow=replace(cfg.flow, self_forcing_depth=depth))
        return own_context(c, model, model, z, clean, t_clean, cond, {}, torch.Generator().manual_seed(3), None)[0]

    ctx = {k: context(k) for k in (1, 2, nt - 2, nt - 1, nt + 3)}
    assert torch.equal(ctx[1][:, 0], clean[:, 0]) and not torch.allclose(ctx[1][:, 1:], clean[:, 1:])
    assert torch.allclose(ctx[1][:, :2], ctx[2][:, :2], atol=1e-6)
    assert (ctx[1][:, 2:] - ctx[2][:, 2:]).abs().amax() > 1e-3
    assert torch.allclose(ctx[nt - 2][:, :-1], ctx[nt - 1][:, :-1], atol=1e-6)
    assert (ctx[nt - 2][:, -1] - ctx[nt - 1][:, -1]).abs().amax() > 1e-3
    assert torch.equal(ctx[nt - 1], ctx[nt + 3])


def test_vae_motion_weight_weighs_what_moves(tmp_path, tiny_pipeline):
    """train-vae motion_weight=W: pixels that change between consecutive frames (grown by one pixel) weigh 1 + W."""
    from worldsim.cli import main as cli
    from worldsim.model import checkpoint as C
    from worldsim.train.train_vae import motion_weights

    x = -torch.ones(1, 2, 3, 8, 8)
    x[0, 1, :, 4, 4] = 1.0  # a one-pixel ball appears
    w = motion_weights(x, 9.0)
    assert w.shape == (1, 1, 1, 8, 8)
    assert w[0, 0, 0, 4, 4] == 10 and w[0, 0, 0, 3, 5] == 10 and w[0, 0, 0, 0, 0] == 1
    out = tmp_path / "vae"
    assert cli(["train-vae", f"store={tiny_pipeline['store']}", f"out={out}", "steps=2", "batch_size=4",
                "eval_every=2", "save_every=2", "val_windows=2", "warmup=1", "device=cpu", "motion_weight=20",
                *TINY_VAE]) == 0
    assert C.load_meta(C.resolve(out))["train"]["motion_weight"] == 20


def test_rms_norm_matches_torch_with_its_gradients():
    """The QK-norm's hand-written backward gives what autograd of F.rms_norm gives (float32)."""
    torch.manual_seed(0)
    norm = dit_module.RMSNorm(12)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 12)
    g = torch.randn(3, 5, 12)
    grads = []
    for fn in (norm, lambda v: torch.nn.functional.rms_norm(v, (12,), norm.weight, norm.eps)):
        xi = x.clone().requires_grad_(True)
        norm.weight.grad = None
        y = fn(xi)
        y.backward(g)
        grads.append((y.detach(), xi.grad, norm.weight.grad.clone()))
    for ours, ref in zip(*grads):
        assert torch.allclose(ours, ref, atol=1e-5)


def test_pixel_loss_adds_the_decoded_frames_error():
    """flow.pixel_loss: the loss is the latent loss plus the weight times the pixel MSE of the noisiest frames'
    predictions decoded by the VAE against the decoded targets (the same draws otherwise); the term is zero when the
    prediction is the target; its gradient reaches the DiT and not the frozen VAE; a bad weight is a one-line error."""
    from worldsim.train.train_dit import TrainConfig, batch_loss, check_config, pixel_term

    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(latent_channels=4, spatial=2, channels=[8, 16]))
    vae.requires_grad_(False)

    def cfg(weight: float) -> TrainConfig:
        return TrainConfig(frames=4, batch_size=2, p_drop_text=0.0, p_drop_actions=0.0, precision="fp32",
                           model=DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True),
                           flow=FlowConfig(objective="teacher_forcing", prediction="delta", p_pure_noise=0.5,
                                           pixel_loss=weight, pixel_frames=2))

    spec = ModelSpec(dit=cfg(0).model, text=TextConfig(width=16, depth=1, heads=2), vocab=["<pad>", "<unk>", "<cls>"],
                     latent_channels=4, action_dim=1, action_scale=[1.0], prediction="delta")
    model = WorldModel(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    z = torch.randn(2, 4, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    batch = {"captions": [""] * 2, "prompts": [""] * 2, "actions": torch.randn(2, 4, 1)}
    plain = batch_loss(cfg(0), model, model, z, batch, torch.Generator().manual_seed(3))
    with_pixels = batch_loss(cfg(10.0), model, model, z, batch, torch.Generator().manual_seed(3), vae=vae)
    half = batch_loss(cfg(5.0), model, model, z, batch, torch.Generator().manual_seed(3), vae=vae)
    # the same draws: what the weight adds is the weight times one term
    assert float(with_pixels - plain) == pytest.approx(2 * float(half - plain), rel=1e-4)
    t = torch.rand(2, 4)
    term = pixel_term(cfg(10.0), vae, z + 0.1 * torch.randn(z.shape), z, t)
    assert float(term) > 0 and float(pixel_term(cfg(10.0), vae, z, z, t)) < 1e-4
    # it reads the noisiest frames only: here frames 2 (t = 1) and 0 (t = 0.5 and the earlier of the ties)
    t = torch.tensor([[0.5, 0.5, 1.0, 0.5]] * 2)
    for frame, seen in ((2, True), (0, True), (1, False), (3, False)):
        off = z.clone()
        off[:, frame] += 1.0
        assert (float(pixel_term(cfg(10.0), vae, off, z, t)) > 1e-6) == seen, frame
    assert float(with_pixels) > float(plain)
    with_pixels.backward()
    assert model.dit.patch_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in vae.parameters())
    with pytest.raises(Exception, match="pixel_loss"):
        check_config(cfg(-1.0))


TEACHER = ["model.attention=causal", "model.prev_frame=true", "flow.objective=teacher_forcing",
           "flow.prediction=delta", "flow.p_pure_noise=0.5"]


def test_adversarial_term_trains_a_critic_and_resumes_exactly(stores, vae_run, tmp_path, capsys):
    """adv_weight > 0: the critic trains beside the world model (its losses logged), is saved in the checkpoint,
    and a run resumed half-way gives the same losses and the same world model and critic weights as one straight
    run; the term changes what the model learns (against adv_weight=0, same seed); a velocity model is refused."""
    adv = ["adv_weight=0.5", "adv_warmup=2", "save_every=2", *TEACHER]
    a, b, plain = tmp_path / "A", tmp_path / "B", tmp_path / "plain"
    assert cli(train_args(stores["square"], vae_run, a, 4, *adv)) == 0
    assert cli(train_args(stores["square"], vae_run, b, 2, *adv)) == 0
    assert cli(train_args(stores["square"], vae_run, b, 4, *adv)) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert cli(train_args(stores["square"], vae_run, plain, 4, "save_every=2", *TEACHER)) == 0
    rows = _rows(a)
    assert all(math.isfinite(r["adv_d"]) and math.isfinite(r["adv_g"]) for r in rows)
    assert [r["loss"] for r in _rows(b)] == [r["loss"] for r in rows]
    ca, cb = C.resolve(a), C.resolve(b)
    assert (ca / "critic.safetensors").is_file() and "critic_optimizer" in C.load_meta(ca)
    for stem in ("model", "ema", "critic"):
        wa, wb = C.load_tensors(ca, stem), C.load_tensors(cb, stem)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), stem
    w_plain = C.load_tensors(C.resolve(plain), "model")
    w_adv = C.load_tensors(ca, "model")
    assert any(not torch.equal(w_plain[k], w_adv[k]) for k in w_plain)
    err = one_line_error(capsys, cli, train_args(stores["square"], vae_run, tmp_path / "v", 1, "adv_weight=0.1"))
    assert "adv_weight" in err
    err = one_line_error(capsys, cli, train_args(stores["square"], vae_run, tmp_path / "w", 1, "adv_weight=0.1",
                                                 "adv_lr=0", *TEACHER))
    assert "adv_lr=0" in err and not (tmp_path / "w").exists()


def test_adversarial_term_under_ddp_keeps_ranks_identical(stores, vae_run, tmp_path):
    """Two data-parallel processes with the adversarial term: the world models and the critics end identical on
    both ranks (the critic's gradients are averaged as the model's are)."""
    out = tmp_path / "ddp_adv"
    _torchrun_train(stores["square"], vae_run, out, "adv_weight=0.5", "adv_warmup=1", *TEACHER)
    r0, r1 = (C.load_tensors(out, f"rank{k}") for k in (0, 1))
    assert any(k.startswith("critic.") for k in r0)
    differ = [k for k in r0 if not torch.equal(r0[k], r1[k])]
    assert not differ, f"parameters differ between ranks: {differ}"


def test_critic_tells_blur_from_detail_and_its_gradient_sharpens():
    """The hinge critic learns to tell sharp next frames from blurred versions of them (the one-step sampler's mean),
    and the generator term's gradient on a blurred prediction points towards the detail it lacks."""
    from worldsim.train.adversarial import Adversary

    g = torch.Generator().manual_seed(0)
    adv = Adversary(4, weight=1.0, lr=2e-3, t_min=0.99, warmup=0, width=16, device=torch.device("cpu"),
                    precision="fp32", seed=0)

    def blur(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0] * x.shape[1]
        flat = x.reshape(n, *x.shape[2:])
        return torch.nn.functional.avg_pool2d(flat, 3, 1, 1, count_include_pad=False).reshape(x.shape)

    t = torch.ones(8, 3)
    for _ in range(60):
        z = torch.randn(8, 3, 4, 8, 8, generator=g)
        adv.generator_term(blur(z), z, t, 0)
        adv.critic_step()
    assert adv.last["adv_real"] > adv.last["adv_fake"] + 0.5, adv.last
    z = torch.randn(8, 3, 4, 8, 8, generator=g)
    fake = blur(z).requires_grad_(True)
    before = adv.generator_term(fake, z, t, 0)
    before.backward()
    step = fake.grad / fake.grad.norm()  # the direction the world model's output moves in
    after = blur(z) - 0.5 * fake.shape[0] ** 0.5 * step
    # the step raises the critic's score and adds fine detail (what is left after blurring again)
    with torch.no_grad():
        assert float(adv.generator_term(after, z, t, 0)) < float(before.detach())

    def fine(x: torch.Tensor) -> float:
        return float((x - blur(x))[:, 1:].pow(2).mean())

    assert fine(after) > fine(blur(z)), (fine(after), fine(blur(z)))
    assert adv.generator_term(z, z, torch.zeros(8, 3), 0).item() == 0  # no frame at pure noise: no term
