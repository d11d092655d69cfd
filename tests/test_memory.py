"""Pose-indexed memory (worldsim/model/memory.py): the recall geometry, the reader's history rows, and that a tiny
model with memory learns to bring back what it saw after the view left its context window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsim.model.dit import DiTConfig
from worldsim.model.flow import FlowConfig
from worldsim.model.memory import as_3x3, chain, coverage, window_memory
from worldsim.model.world_model import ModelSpec, TextConfig, WorldModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _shift(columns: float, width: int) -> torch.Tensor:
    """The step map of a view that moved `columns` to the right: frame_j(x) = frame_{j-1}(x + columns)."""
    theta = torch.tensor([[1.0, 0.0, 2.0 * columns / width], [0.0, 1.0, 0.0]])
    return as_3x3(theta)


def _views(panorama: torch.Tensor, offsets: list[int], width: int) -> torch.Tensor:
    return torch.stack([panorama[..., o : o + width] for o in offsets])


def test_chain_composes_the_steps_and_coverage_measures_the_overlap():
    steps = torch.stack([_shift(c, 8) for c in (0, 1, 2, -3)])[None]  # (1, 4, 3, 3)
    maps = chain(steps)
    assert torch.allclose(maps[0, 3, 0], _shift(0, 8), atol=1e-6)  # 1 + 2 - 3 columns: back where it started
    assert torch.allclose(maps[0, 2, 0], _shift(3, 8), atol=1e-6)
    assert torch.allclose(maps[0, 2, 2], torch.eye(3))
    cover = coverage(torch.stack([_shift(0, 8), _shift(2, 8), _shift(8, 8)]))
    assert cover.tolist() == [1.0, 0.75, 0.0]


def test_the_view_it_returns_to_is_recalled_from_the_frame_that_showed_it():
    """A view pans right 5 columns and back: on the way back each frame recalls the outward frame of the same pose
    (not the older ones, not the newer ones), exactly, with full coverage; frames whose view nobody saw at least
    MIN_COVER of get none."""
    c, h, w = 3, 4, 8
    pan = torch.randn(c, h, 20, generator=torch.Generator().manual_seed(0))
    offsets = [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0]
    z = _views(pan, offsets, w)[None]  # (1, 11, C, h, w)
    steps = torch.stack([_shift(0, w)] + [_shift(b - a, w) for a, b in zip(offsets, offsets[1:])])[None]
    mem = window_memory(z, steps, first=0)  # (1, 11, C + 2, h, w)
    assert mem[0, :2].abs().max() == 0  # frames 0 and 1 have nothing two frames back
    for j in range(6, 11):  # the return: offsets 4, 3, 2, 1, 0 were seen at frames 4, 3, 2, 1, 0
        same = offsets.index(offsets[j])
        assert torch.allclose(mem[0, j, :c], z[0, same], atol=1e-5), j
        assert mem[0, j, c].min() == 1.0 and mem[0, j, c + 1].abs().max() < 1e-6  # covered, not moved
    # on the way out, frame j recalls frame j - 2 moved two columns: its last two columns are not covered
    assert torch.allclose(mem[0, 4, :c, :, : w - 2], z[0, 4, :, :, : w - 2], atol=1e-5)
    assert mem[0, 4, c, :, w - 2 :].max() == 0.0
    torch.testing.assert_close(mem[0, 4, c + 1, :, : w - 2], torch.full((h, w - 2), 0.25))  # 2 of 8 columns
    # the frame being drawn (one past the bank) is recalled from the bank too
    ahead = window_memory(z[:, :10], steps, first=10)
    assert torch.allclose(ahead[0, 0, :c], z[0, 0], atol=1e-5)


def test_the_reader_returns_the_rows_before_each_window(tmp_path):
    from wm_helpers import tiny_store

    from store import open_store
    from store.windows import WindowReader

    tiny_store(tmp_path / "s", episodes=2, steps=10, width=32, height=32)
    plain = WindowReader(str(tmp_path / "s"), 3)
    r = WindowReader(str(tmp_path / "s"), 3, history=4)
    assert len(r) == len(plain)  # windows still start anywhere, the first rows of an episode included
    root = open_store(str(tmp_path / "s"))
    ends = root[r.buckets[0].name]["meta/episode_ends"][...]
    for i in range(len(r)):
        w = r.read(i)
        ep_first = max([0] + [int(e) for e in ends if e <= w["start"]])
        have = min(4, w["start"] - ep_first)
        assert w["past_valid"].tolist() == [False] * (4 - have) + [True] * have
        assert w["past_frames"].shape == (4, 32, 32, 3) and w["past_actions"].shape == (4, w["actions"].shape[1])
        assert not w["past_frames"][: 4 - have].any()
        data = root[r.buckets[0].name]["data"]
        assert np.array_equal(w["past_frames"][4 - have :], data["frames"][w["start"] - have : w["start"]])
        assert np.array_equal(w["past_actions"][4 - have :], data["actions"][w["start"] - have : w["start"]])


def test_a_tiny_model_with_memory_brings_back_what_left_its_window():
    """Views of a random latent panorama, panning right 4 columns and back, trained with a 3-frame window and 6
    frames of history: at the last frame of the return, the column entering the view was last seen 7 frames before,
    outside the window. With its memory the trained model predicts that frame far better than with the memory
    taken away, and far better than copying the last frame (fixed seed)."""
    from worldsim.train.train_dit import TrainConfig, batch_loss

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    c, h, w, n_hist = 4, 4, 4, 6
    cfg = TrainConfig(frames=3, batch_size=8, p_drop_text=0.0, p_drop_actions=0.0, precision="fp32",
                      model=DiTConfig(width=48, depth=2, heads=2, attention="causal", prev_frame=True, warp=True,
                                      memory=n_hist),
                      flow=FlowConfig(objective="teacher_forcing", prediction="delta", p_pure_noise=0.5,
                                      ))
    spec = ModelSpec(dit=cfg.model, text=TextConfig(width=16, depth=1, heads=2), vocab=["<pad>", "<unk>", "<cls>"],
                     latent_channels=c, action_dim=1, action_scale=[1.0], prediction="delta")
    model = WorldModel(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    offsets = [0, 1, 2, 3, 4, 3, 2, 1, 0]
    moves = torch.tensor([b - a for a, b in zip(offsets, offsets[1:])] + [0], dtype=torch.float32)

    def episodes(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 9, C, h, w) views and (n, 9, 1) stored-aligned actions (columns moved after each frame)."""
        pan = torch.randn(n, c, h, w + 4, generator=gen)
        z = torch.stack([pan[..., o : o + w] for o in offsets], dim=1)
        return z, moves.expand(n, 9)[..., None].clone()

    for _ in range(300):
        z, a = episodes(8, g)
        end = int(torch.randint(3, 10, (1,), generator=g))  # a window of frames end - 3 .. end - 1
        s0 = end - 3
        past = torch.zeros(8, n_hist, c, h, w)
        past_a = torch.zeros(8, n_hist, 1)
        valid = torch.zeros(8, n_hist, dtype=torch.bool)
        k = min(n_hist, s0)
        if k:
            past[:, n_hist - k :], past_a[:, n_hist - k :] = z[:, s0 - k : s0], a[:, s0 - k : s0]
            valid[:, n_hist - k :] = True
        batch = {"captions": [""] * 8, "prompts": [""] * 8, "actions": a[:, s0:end], "past_actions": past_a,
                 "past_valid": valid}
        loss = batch_loss(cfg, model, model, z[:, s0:end], batch, g, past)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    z, a = episodes(64, torch.Generator().manual_seed(1))
    x = z[:, 6:9].clone()  # the window: the last three frames of the return
    x[:, -1] = torch.randn(x[:, -1].shape, generator=torch.Generator().manual_seed(2))
    t = torch.full((64, 3), 0.02)
    t[:, -1] = 1.0
    cond = model.conditioning([""] * 64, a, skip=6)
    cond["prev"] = z[:, 5]
    mem = model.memory_for(z, a, 6)
    err = {}
    with torch.no_grad():
        for name, m in (("memory", mem), ("none", torch.zeros_like(mem))):
            pred = model(x, t, {**cond, "memory": m}, x0=True)[:, -1]
            err[name] = float((pred - z[:, -1]).pow(2).mean())
    copy = float((z[:, -2] - z[:, -1]).pow(2).mean())
    assert err["memory"] < 0.5 * err["none"] and err["memory"] < 0.3 * copy, (err, copy)
