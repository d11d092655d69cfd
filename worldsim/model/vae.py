"""The video compression network: a convolutional VAE, per frame by default, optionally causal in time (x4).

Frames (B, T, 3, H, W) in [-1, 1] map to latents (B, T', C, H/s, W/s) with s = `spatial` (4 by default, 8 for 128 px
and up) and T' = T (per frame) or T / 4 (`temporal=4`: the Sora report's spacetime compression, done here as a
per-frame spatial encoder followed by causal stride-2 convolutions in time, so latent frame j depends only on
frames up to 4j + 3). Latents are normalised per channel with statistics measured after training (`latent_mean`,
`latent_std` buffers), so the diffusion model sees roughly unit-variance inputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.frames import psnr_of_mse


@dataclass
class VAEConfig:
    """Shape of the compression network."""

    latent_channels: int = 8
    spatial: int = 4  # downsampling factor, a power of 2
    temporal: int = 1  # 1 (per frame) or 4 (causal in time)
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # widths at full, /2, /4 ... resolution
    kl_weight: float = 1e-6

    def __post_init__(self) -> None:
        levels = int(math.log2(self.spatial)) if self.spatial > 0 else -1
        if self.spatial < 1 or 2**levels != self.spatial:
            raise InputError(f"vae.spatial must be a power of 2, got {self.spatial}")
        if len(self.channels) != levels + 1:
            raise InputError(f"vae.channels needs {levels + 1} widths for spatial={self.spatial}, got {self.channels}")
        if self.temporal not in (1, 4):
            raise InputError(f"vae.temporal must be 1 or 4, got {self.temporal}")
        if self.latent_channels < 1:
            raise InputError(f"vae.latent_channels must be >= 1, got {self.latent_channels}")


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, c // 4) if c >= 8 else 1, c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.n1, self.c1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class CausalTime(nn.Module):
    """Stride-2 (down) or x2 (up) in time with a causal kernel of 3: output frame j sees inputs up to its own."""

    def __init__(self, c: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = nn.Conv3d(c, c, (3, 1, 1), stride=(2 if down else 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if self.down:  # output j sees frames 2j - 1 .. 2j + 1 (frame -1 repeats frame 0)
            return self.conv(torch.cat([x[:, :, :1], x], dim=2))
        x = x.repeat_interleave(2, dim=2)  # output i sees upsampled frames i - 2 .. i
        return self.conv(torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2))


class VideoVAE(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, c = cfg.channels, cfg.latent_channels
        enc: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        for i in range(len(ch) - 1):
            enc += [nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1), ResBlock(ch[i + 1], ch[i + 1])]
        enc += [ResBlock(ch[-1], ch[-1]), _norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], 2 * c, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(c, ch[-1], 3, padding=1), ResBlock(ch[-1], ch[-1]), ResBlock(ch[-1], ch[-1])]
        for i in range(len(ch) - 1, 0, -1):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i], ch[i - 1], 3, padding=1),
                    ResBlock(ch[i - 1], ch[i - 1])]
        dec += [_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        if cfg.temporal == 4:
            self.t_enc = nn.Sequential(CausalTime(2 * c, True), nn.SiLU(), CausalTime(2 * c, True))
            self.t_dec = nn.Sequential(CausalTime(c, False), nn.SiLU(), CausalTime(c, False))
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))

    def _check(self, x: torch.Tensor) -> None:
        b, t, _, h, w = x.shape
        s = self.cfg.spatial
        if h % s or w % s:
            raise InputError(f"frame size {h}x{w} is not divisible by the VAE's spatial factor {s}")
        if t % self.cfg.temporal:
            raise InputError(f"{t} frames is not a multiple of the VAE's temporal factor {self.cfg.temporal}")

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, unnormalised. x: (B, T, 3, H, W) -> 2 x (B, T', C, h, w)."""
        self._check(x)
        b, t = x.shape[:2]
        m = self.encoder(x.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        m = m.unflatten(0, (b, t))
        if self.cfg.temporal > 1:
            m = self.t_enc(m.transpose(1, 2)).transpose(1, 2)
        mean, logvar = m.float().chunk(2, dim=2)
        return mean, logvar.clamp(-30, 20)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised latents (B, T', C, h, w) -> frames (B, T, 3, H, W)."""
        if self.cfg.temporal > 1:
            z = self.t_dec(z.transpose(1, 2)).transpose(1, 2)
        b, t = z.shape[:2]
        y = self.decoder(z.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        return y.unflatten(0, (b, t)).float()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, KL per element)."""
        mean, logvar = self.moments(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        z = mean + (0.5 * logvar).exp() * noise
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return self.decode_raw(z.to(x.dtype) if x.dtype != torch.float32 else z), kl

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [-1, 1] -> normalised latents (posterior means) (B, T', C, h, w)."""
        mean, _ = self.moments(x)
        return (mean - self.latent_mean.view(1, 1, -1, 1, 1)) / self.latent_std.view(1, 1, -1, 1, 1)

    def decode_normalised(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> frames, not clamped and differentiable (a loss through the decoder)."""
        return self.decode_raw(z.float() * self.latent_std.view(1, 1, -1, 1, 1) + self.latent_mean.view(1, 1, -1, 1, 1))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> frames in [-1, 1] (clamped)."""
        return self.decode_normalised(z).clamp(-1, 1)

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of frames in [-1, 1], per item of the leading dimension, on the 0-255 scale
    (10 log10(255^2 / MSE), docs/architecture.md section 5). Inputs are quantised to uint8 first, as stored."""
    qa = ((a.float().clamp(-1, 1) + 1) * 127.5).round()
    qb = ((b.float().clamp(-1, 1) + 1) * 127.5).round()
    return psnr_of_mse((qa - qb).pow(2).flatten(1).mean(1))

def load_vae(path: str | Path, device: torch.device | str = "cpu") -> tuple[VideoVAE, dict[str, Any]]:
    """A trained VAE (eval mode) and its checkpoint metadata, from a run directory or a checkpoint folder."""
    ck = C.resolve(path)
    meta = C.load_meta(ck, kind="vae")
    model = VideoVAE(VAEConfig(**meta["vae"]))
    model.load_state_dict(C.load_tensors(ck, "model"))
    return model.to(device).eval(), {**meta, "path": str(ck), "digest": C.digest(ck)}
