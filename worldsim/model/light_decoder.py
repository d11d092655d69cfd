"""A light decoder for the dream: a small convolutional net distilled from a world model's VAE decoder (as TAESD is
from Stable Diffusion's), mapping the same normalised latents to frames at a fraction of the cost.

    worldsim distill-decoder ckpt=runs/dit store=data/voxel64      # -> runs/dit/decoder (where DreamEnv looks)
    env = DreamEnv.from_checkpoint("runs/dit")                      # decoder="auto": the light one when it is there

Layout (per frame): a 3x3 conv from the latent channels to `width`, a ReLU and a second 3x3 conv; then for each x2 of
the VAE's spatial factor a nearest-neighbour upsample and two 3x3 convs (ReLU), halving the width each time (at
least 16); a 3x3 conv to RGB. At 64 px from 16 x 16 latents with width 64: about 0.17 GMAC per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from worldsim.errors import InputError
from worldsim.model import checkpoint as C


@dataclass
class LightDecoderConfig:
    width: int = 64  # channels at the latent resolution; halved at each upsampling (at least 16)

    def __post_init__(self) -> None:
        if self.width < 8:
            raise InputError(f"decoder.width must be >= 8, got {self.width}")


class LightDecoder(nn.Module):
    """Normalised latents (B, C, h, w) -> frames (B, 3, h * spatial, w * spatial) in [-1, 1]."""

    def __init__(self, cfg: LightDecoderConfig, latent_channels: int, spatial: int) -> None:
        super().__init__()
        self.cfg, self.latent_channels, self.spatial = cfg, latent_channels, spatial
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, w, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(w, w, 3, padding=1), nn.ReLU()]
        for _ in range(int(math.log2(spatial))):
            out = max(16, w // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, out, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(out, out, 3, padding=1), nn.ReLU()]
            w = out
        layers.append(nn.Conv2d(w, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.contiguous(memory_format=torch.channels_last)).clamp(-1, 1)


def default_out(dit_checkpoint: str | Path) -> Path:
    """Where `worldsim distill-decoder` writes by default and `find_decoder` looks: `<run dir>/decoder`."""
    return C.run_dir(C.resolve(dit_checkpoint)) / "decoder"


def load_decoder(path: str | Path, device: torch.device | str = "cpu") -> LightDecoder:
    """A distilled decoder (eval mode) from a run directory or checkpoint; its meta (digest included) as `.meta`."""
    ck = C.resolve(path)
    meta = C.load_meta(ck, kind="decoder")
    try:
        model = LightDecoder(LightDecoderConfig(**meta["decoder"]), int(meta["latent_channels"]),
                             int(meta["spatial"]))
        model.load_state_dict(C.load_tensors(ck, "model"))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise C.CheckpointError(f"{ck} does not hold a usable light decoder: {first}") from err
    model.meta = {**meta, "path": str(ck), "digest": C.digest(ck)}
    return model.to(device).eval()


def find_decoder(dit_checkpoint: str | Path) -> Path | None:
    """`<run dir>/decoder` of a world-model checkpoint when it holds a light decoder distilled from this checkpoint's
    VAE, else None (one distilled from another VAE is not used: it would draw other pictures). A student of
    `worldsim distill` without a decoder of its own uses its teacher's (the same VAE)."""
    ck = C.resolve(dit_checkpoint)
    want = C.load_meta(ck).get("vae", {}).get("digest")
    for place in C.run_dirs(ck):
        found = C.latest(place / "decoder")
        if found is None:
            continue
        meta = C.load_meta(found)
        if meta.get("kind") == "decoder" and not (want and meta.get("vae_digest") != want):
            return found
    return None
