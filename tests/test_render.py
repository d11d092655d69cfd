"""Pixel carry (worldsim/model/render.py): dreamed frames composed from the previous frame's pixels, moved by the
model's own warp, wherever the model kept its base; the VAE's decode elsewhere."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldsim.dream.core import DreamCore
from worldsim.errors import InputError
from worldsim.model.dit import DiTConfig
from worldsim.model.flow import FlowConfig
from worldsim.model.render import CARRY_TAU, Source, carry_pixels, carry_weight, check_render, render_frame
from worldsim.model.sampler import WorldSampler
from worldsim.model.vae import VAEConfig, VideoVAE
from worldsim.model.world_model import ModelSpec, TextConfig, WorldModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _shift(pixels: float, size: int) -> torch.Tensor:
    """The step map (1, 3, 3) of a frame whose pixel x shows the previous frame's pixel x + `pixels`."""
    step = torch.eye(3)[None].clone()
    step[0, 0, 2] = 2.0 * pixels / size
    return step


def test_carry_moves_the_previous_pixels_where_the_model_kept_them_and_decodes_elsewhere():
    g = torch.Generator().manual_seed(0)
    prev = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    decoded = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    assert torch.allclose(carry_pixels(prev, decoded, torch.eye(3)[None], ones), prev, atol=1e-6)
    assert torch.equal(carry_pixels(prev, decoded, torch.eye(3)[None], zeros), decoded)
    # two pixels to the right: the columns whose source is inside come from prev, the two brought in from outside
    # from the decode
    out = carry_pixels(prev, decoded, _shift(2, 16), ones)
    assert torch.allclose(out[..., :14], prev[..., 2:], atol=1e-5)
    assert torch.allclose(out[..., 14:], decoded[..., 14:])
    # the weight: 1 where the base is the previous frame's and unchanged, exp(-1) at a change of tau, 0 from memory
    base = torch.randn(1, 4, 4, 4, generator=g)
    kept = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert torch.allclose(carry_weight(base, base, kept), ones)
    assert torch.allclose(carry_weight(base + CARRY_TAU, base, kept), ones * math.exp(-1.0))
    assert torch.equal(carry_weight(base, base, ~kept), zeros)
    # a frame whose base is partly recalled: those positions come from the recalled frame's pixels, moved by the
    # recall's map, the others from the previous frame (here both maps are the identity)
    recalled = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    from_prev = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    from_prev[..., :2] = False  # the left half (8 pixel columns) was recalled
    eye = torch.eye(3)[None]
    src = Source(base, from_prev, eye, torch.tensor([0]), eye)
    out = render_frame(base, decoded, prev, src, recalled)
    assert torch.allclose(out[..., :6], recalled[..., :6], atol=1e-5)  # the weights blend over the seam
    assert torch.allclose(out[..., 10:], prev[..., 10:], atol=1e-5)
    nothing = render_frame(base, decoded, prev, src._replace(recall=torch.tensor([-1])), recalled)
    assert torch.allclose(nothing[..., :6], decoded[..., :6], atol=1e-5)
    assert check_render("latent") == "latent"
    with pytest.raises(InputError, match="render must be one of carry, latent"):
        check_render("pixels")


def _delta_sampler(shift_latent_px: float = 0.0, memory: int = 0) -> WorldSampler:
    """An untrained frame-causal delta model with an action warp (output 0: each frame is its base) and a VAE,
    built in memory; its warp moves the picture `shift_latent_px` latent pixels for any action."""
    torch.manual_seed(0)
    dit = DiTConfig(width=32, depth=1, heads=2, attention="causal", prev_frame=True, warp=True, memory=memory)
    spec = ModelSpec(dit=dit, text=TextConfig(width=16, depth=1, heads=2), vocab=["<pad>", "<unk>", "<cls>"],
                     latent_channels=4, action_dim=1, action_scale=[1.0], prediction="delta")
    model = WorldModel(spec).eval()
    with torch.no_grad():
        model.dit.warp[2].bias[2] = 2.0 * shift_latent_px / 4  # x offset of the affine, 4 latent pixels wide
        if memory:  # an odd generator (G(a) - G(-a)) cancels a bias: a weight makes the shift follow the action
            model.dit.warp[2].weight.zero_()
            model.dit.warp[0].weight.fill_(1.0)
            model.dit.warp[0].bias.zero_()
            model.dit.warp[2].weight[2].fill_(0.5)
    vae = VideoVAE(VAEConfig(latent_channels=4, spatial=4, channels=[8, 8, 8])).eval()
    flow = FlowConfig(objective="teacher_forcing", prediction="delta", p_pure_noise=0.5)
    meta = {"frames": 4, "fps": 10, "height": 16, "width": 16, "train": {"flow": vars(flow)},
            "action_spec": {"type": "Box", "low": -1.0, "high": 1.0, "shape": [1]}}
    return WorldSampler(model, vae, meta, "in-memory", torch.device("cpu"))


def test_a_model_that_keeps_its_base_dreams_the_previous_pixels_exactly():
    """With its output 0 the model's frame is its base: carried, the dream repeats the last real frame pixel for
    pixel (decoded, it is the VAE's reconstruction); with a warp that moves the picture, the carried frame is the
    real one moved by it, the columns brought in from outside the frame decoded."""
    s = _delta_sampler()
    assert s.can_carry
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    actions = np.zeros((6, 1), np.float32)
    carried = s.rollout(frames, actions, steps=1, seed=0, render="carry")[3:]
    decoded = s.rollout(frames, actions, steps=1, seed=0, render="latent")[3:]
    assert len(carried) == 4 and (carried == frames[-1]).all()
    assert not (decoded == frames[-1]).all()
    moved = _delta_sampler(shift_latent_px=0.5)  # 2 pixels of 16
    one = moved.rollout(frames, np.ones((3, 1), np.float32), steps=1, seed=0, render="carry")[3]
    assert np.abs(one[:, :14].astype(int) - frames[-1][:, 2:].astype(int)).max() <= 1
    assert not (one[:, 14:] == frames[-1][:, 14:]).all()


def test_dream_core_renders_every_step_in_order_even_when_looked_at_once():
    """DreamCore.frames renders the steps since its last call from the frames before them: stepping twice and
    looking once gives what looking after each step gives; render=latent is the plain decode."""
    frames = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    acts = [torch.ones(2, 1), -torch.ones(2, 1)]

    def run(look_each: bool, memory: int) -> np.ndarray:
        core = DreamCore(_delta_sampler(shift_latent_px=0.25, memory=memory), 2, steps=1, precision="fp32")
        core.reset_rows([0, 1], [frames, frames[::-1]], [None, None], ["", ""], [0, 1])
        for a in acts:
            core.step(a)
            if look_each:
                seen = core.frames()
        return seen if look_each else core.frames()

    for memory in (0, 4):  # with memory, the frames recalled come from the bank's rendered pixels
        each, once = run(True, memory), run(False, memory)
        assert np.array_equal(each, once)
    core = DreamCore(_delta_sampler(), 1, steps=1, precision="fp32", render="latent")
    core.reset_rows([0], [frames], [None], [""], [0])
    z = core.step(torch.zeros(1, 1))
    assert np.array_equal(core.frames(), core.decode(z))
