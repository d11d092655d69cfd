"""The light decoder (worldsim distill-decoder): shapes, distillation, determinism, DreamEnv's choice of decoder."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from worldsim.model.light_decoder import LightDecoder, LightDecoderConfig, find_decoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shapes_and_range():
    for spatial, size in ((4, 8), (8, 4)):
        net = LightDecoder(LightDecoderConfig(width=16), latent_channels=4, spatial=spatial)
        with torch.no_grad():
            y = net(torch.randn(3, 4, size, size) * 10)
        assert y.shape == (3, 3, size * spatial, size * spatial)
        assert float(y.min()) >= -1 and float(y.max()) <= 1
    with pytest.raises(Exception, match="decoder.width"):
        LightDecoderConfig(width=4)


@pytest.fixture(scope="module")
def distilled(tiny_pipeline, tmp_path_factory):
    """A copy of the tiny causal world model with a light decoder distilled for it (default place: <run>/decoder)."""
    from worldsim.cli import main as cli

    run = tmp_path_factory.mktemp("light") / "causal"
    shutil.copytree(tiny_pipeline["causal"], run)
    args = ["distill-decoder", f"ckpt={run}", f"store={tiny_pipeline['store']}",
            f"val_store={tiny_pipeline['heldout']}", "steps=60", "batch_size=8", "lr=0.005", "warmup=5",
            "log_every=10", "val_frames=16", "device=cpu", "decoder.width=16"]
    assert cli(args) == 0
    return run, args


def test_distill_learns_the_full_decoder_and_is_deterministic(distilled, tmp_path):
    import json

    from worldsim.cli import main as cli
    from worldsim.model import checkpoint as C

    run, args = distilled
    found = find_decoder(run)
    assert found is not None and found.parent.parent == run / "decoder"
    meta = C.load_meta(found, kind="decoder")
    val = meta["val"]
    first = [json.loads(x) for x in (run / "decoder" / "metrics.jsonl").read_text().splitlines()][0]
    assert val["light_vs_full"] > first["psnr_vs_full"] + 3  # it learned (held-out, against the teacher)
    assert val["light_vs_full"] > 20
    again = tmp_path / "again"
    assert cli([*args, f"out={again}"]) == 0
    assert (C.resolve(again) / "model.safetensors").read_bytes() == (found / "model.safetensors").read_bytes()


def test_dream_env_uses_the_light_decoder_by_default(distilled):
    from worldsim.dream.env import DreamEnv
    from worldsim.model.frames import psnr_of_mse

    run, _ = distilled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        light = DreamEnv.from_checkpoint(run, max_episode_steps=None)
        full = DreamEnv.from_checkpoint(run, max_episode_steps=None, decoder="full")
    assert light.sampler.light is not None and full.sampler.light is None
    assert "light_decoder_digest" in light.sampler.provenance()
    a, _ = light.reset(seed=3)
    b, _ = full.reset(seed=3)
    act = light.action_space.sample()
    for _ in range(3):
        a, *_ = light.step(act)
        b, *_ = full.step(act)
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    assert psnr_of_mse(mse) > 18  # the same dream, drawn by either decoder


def test_light_decoder_refused_when_missing_or_from_another_vae(tiny_pipeline, distilled, capsys):
    from wm_helpers import one_line_error

    from worldsim.cli import main as cli
    from worldsim.errors import InputError
    from worldsim.model.sampler import WorldSampler

    with pytest.raises(InputError, match="no light decoder"):
        WorldSampler.load(tiny_pipeline["full"], decoder="light")
    assert WorldSampler.load(tiny_pipeline["full"], decoder="auto").light is None
    run, _ = distilled
    other = WorldSampler.load(tiny_pipeline["memory"])  # same VAE: the decoder fits
    other.use_decoder(str(run / "decoder"), tiny_pipeline["memory"])
    assert other.light is not None
    err = one_line_error(capsys, cli, ["distill-decoder", f"ckpt={run}", f"store={tiny_pipeline['store']}",
                                       "noise=-1"])
    assert "noise must be >= 0" in err
