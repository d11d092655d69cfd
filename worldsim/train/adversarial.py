"""An adversarial term for the one-step frames of a teacher-forced world model (`worldsim train adv_weight=...`).

A dreamed frame is drawn in one Euler step from pure noise, and one step of a flow model trained on a squared error
returns the mean of the frames that could come next: where the next frame is certain (the carried, warped view) it
is sharp, where it is not (what comes into view, what lies far ahead) it is the blurred average of the
possibilities. A squared error cannot prefer one sharp possibility over their average; a critic can. Here a small
patch critic looks at a latent frame beside the clean frame before it and learns to tell the engine's next frames
from the model's one-step predictions of them (hinge loss); the world model gets `adv_weight` x the critic's
verdict on its predictions as a second loss term, on the frames of the window at pure noise (t = 1: the level every
dreamed frame starts from), beside the flow loss that keeps the predictions where the data puts them (the recipe of
adversarial post-training of one-step generators: Sauer et al. 2023, ADD; Lin et al. 2025, APT).

The critic sees latents, not pixels (no decoder pass per step), and the previous frame, so a plausible frame in the
wrong place is still told apart. It trains only while the world model does and is saved beside it (`critic`,
`critic_optim` in the checkpoint), so a resumed run continues exactly; sampling never uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.runtime import autocast


class LatentCritic(nn.Module):
    """Patch critic on (frame, previous frame) latents (B, 2C, h, w) -> logits (B, 1, h/2, w/2), spectrally
    normalised (a Lipschitz critic: the hinge loss stays informative while the world model is far from the data)."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(2 * channels, width, 3, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 2 * width, 3, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 1, 3, padding=1)),
        )

    def forward(self, frame: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([frame, prev], dim=1))


def picked(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor, t_min: float
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The frames the term judges: predicted clean frames x0 (B, T, C, h, w) at noise level >= t_min with a frame
    before them in the window; returns (fake, real, prev) stacked (N, C, h, w), or None when there are none."""
    sel = t[:, 1:] >= t_min  # (B, T - 1): frame j + 1 has frame j before it
    if not bool(sel.any()):
        return None
    return x0[:, 1:][sel], z[:, 1:][sel], z[:, :-1][sel]


def check_settings(weight: float, lr: float, t_min: float, warmup: int, width: int) -> None:
    """One line naming the adversarial setting out of range (`worldsim train` checks before loading anything)."""
    if weight < 0 or lr <= 0 or not 0.0 <= t_min <= 1.0 or warmup < 0 or width < 1:
        raise InputError(f"adversarial settings out of range: adv_weight={weight} (>= 0), adv_lr={lr} (> 0), "
                         f"adv_t_min={t_min} (in [0, 1]), adv_warmup={warmup} (>= 0), adv_width={width} (>= 1)")


class Adversary:
    """The critic, its optimiser and the two halves of the hinge loss. `generator_term` is added to the world
    model's loss (its gradient reaches the model through the critic, whose own gradients from it are cleared before
    `critic_step`); `critic_step` then trains the critic on what the same batch produced."""

    def __init__(self, channels: int, weight: float, lr: float, t_min: float, warmup: int, width: int,
                 device: torch.device, precision: str, seed: int):
        check_settings(weight, lr, t_min, warmup, width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.critic = LatentCritic(channels, width).to(device)
        self.opt = torch.optim.AdamW(self.critic.parameters(), lr=lr, betas=(0.5, 0.99), weight_decay=0.0)
        self.weight, self.t_min, self.warmup = weight, t_min, warmup
        self.device, self.precision = device, precision
        self._batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.last: dict[str, float] = {}

    def ramp(self, step: int) -> float:
        """The term's weight at `step`: from 0 to `weight` over the first `warmup` steps, while the critic learns."""
        return self.weight * min(1.0, (step + 1) / self.warmup) if self.warmup else self.weight

    def generator_term(self, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        """ramp(step) x the hinge generator loss -mean(critic(prediction, previous real frame)) on the frames at
        noise >= t_min; keeps them (detached) for this step's `critic_step`. 0 when the batch has none."""
        got = picked(x0.float(), z, t, self.t_min)
        self._batch = None if got is None else (got[0].detach(), got[1], got[2])
        if got is None:
            return x0.new_zeros(())
        fake, _, prev = got
        with autocast(self.device, self.precision):
            score = self.critic(fake, prev).float().mean()
        self.last["adv_g"] = float(-score.detach())
        return -score * self.ramp(step)

    def critic_step(self) -> None:
        """One hinge-loss step of the critic on this step's real next frames and the model's predictions of them."""
        self.opt.zero_grad(set_to_none=True)  # clears what the generator term's backward left on the critic
        spread = dist.is_available() and dist.is_initialized()
        if self._batch is None:
            if not spread:
                return
            # data-parallel: a rank without frames to judge still takes part in the gradient mean, with zeros
            loss = sum(p.sum() * 0 for p in self.critic.parameters())
            d_real = d_fake = torch.zeros(())
        else:
            fake, real, prev = self._batch
            with autocast(self.device, self.precision):
                d_real = self.critic(real, prev).float()
                d_fake = self.critic(fake, prev).float()
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        loss.backward()
        if spread:  # data-parallel: every rank steps with the mean gradient
            for p in self.critic.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.last.update(adv_d=float(loss.detach()), adv_real=float(d_real.detach().mean()),
                         adv_fake=float(d_fake.detach().mean()))
        self._batch = None

    def state(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """(tensors, meta) to save beside the world model: the critic, its optimiser and that optimiser's meta."""
        opt_tensors, opt_meta = C.optimizer_tensors(self.opt)
        return {"critic": self.critic.state_dict(), "critic_optim": opt_tensors}, {"critic_optimizer": opt_meta}

    def load(self, ckpt: Path, meta: dict[str, Any]) -> bool:
        """Resume the critic from checkpoint `ckpt` (False when it holds none: a run that started without the term)."""
        if not (ckpt / "critic.safetensors").exists() or "critic_optimizer" not in meta:
            return False
        self.critic.load_state_dict(C.load_tensors(ckpt, "critic"))
        C.load_optimizer(self.opt, C.load_tensors(ckpt, "critic_optim"), meta["critic_optimizer"])
        return True
