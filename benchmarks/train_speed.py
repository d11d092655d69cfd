"""DiT training speed beside a plain `torch.nn.TransformerEncoder` of the same width, depth and token count.

    python benchmarks/train_speed.py                           # tiny preset, 8 frames of 16x16 latents, batch 8
    python benchmarks/train_speed.py --preset S --batch 4 --precision fp32
    python benchmarks/train_speed.py --preset B --device cuda --batch 32 --frames 16    # + MFU on a GPU

One training step = forward, backward, AdamW update. The DiT step carries all its conditioning: per-frame timestep
and action embeddings, adaLN-Zero modulation, 3D RoPE, QK-norm, text cross-attention (the text encoder's forward and
backward included). The plain encoder gets the same tokens (B, T*h*w/4, width) and a mean-squared loss. Steps are
timed alternately (A, B, A, B, ...) and the medians compared, since this machine is noisy. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import torch

from worldsim.model.dit import PRESETS, DiTConfig
from worldsim.model.flow import FlowConfig, training_targets
from worldsim.model.text import Tokenizer
from worldsim.model.world_model import ModelSpec, TextConfig, WorldModel
from worldsim.runtime import autocast

CAPTION = ("Seen through the player's eyes: a grassy meadow under the midday sun. "
           "The player walks forward and turns left.")


def dit_step(args, device):
    tok = Tokenizer.build([CAPTION])
    spec = ModelSpec(dit=DiTConfig(preset=args.preset, attention=args.attention), text=TextConfig(), vocab=tok.vocab,
                     latent_channels=8, action_dim=12, action_scale=[1.0] * 12)
    model = WorldModel(spec).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    z = torch.randn(args.batch, args.frames, 8, args.latent, args.latent, device=device)
    acts = torch.randn(args.batch, args.frames, 12, device=device)
    g = torch.Generator().manual_seed(0)
    flow = FlowConfig()

    def step():
        x_t, t, target, mask = training_targets(z, flow, g)
        with autocast(device, args.precision):
            v = model(x_t, t, model.conditioning([CAPTION] * args.batch, acts))
        loss = ((v.float() - target).pow(2).mean(dim=(2, 3, 4)) * mask).sum() / mask.sum().clamp_min(1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in model.dit.parameters())


def plain_step(args, device):
    width, depth, heads = PRESETS[args.preset]
    layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True)
    model = torch.nn.TransformerEncoder(layer, depth, enable_nested_tensor=False).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = args.frames * (args.latent // 2) ** 2
    x = torch.randn(args.batch, n, width, device=device)
    target = torch.randn_like(x)

    def step():
        with autocast(device, args.precision):
            y = model(x)
        loss = (y.float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters())


def timed(step, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=list(PRESETS))
    parser.add_argument("--attention", default="full", choices=["full", "factorized"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--latent", type=int, default=16, help="latent height and width (64 px frames / 4)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU bf16 dense peak for MFU (H100 SXM)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    dit, n_dit = dit_step(args, device)
    plain, n_plain = plain_step(args, device)
    for _ in range(2):  # warm-up: allocator, kernels, oneDNN primitives
        dit()
        plain()
    a, b = [], []
    for _ in range(args.reps):
        a.append(timed(dit, device))
        b.append(timed(plain, device))
    ta, tb = statistics.median(a), statistics.median(b)
    tokens = args.batch * args.frames * (args.latent // 2) ** 2
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    width, depth, heads = PRESETS[args.preset]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {device}, {args.precision}; preset {args.preset} (width {width}, depth {depth}, heads {heads}), "
          f"{args.attention} attention, batch {args.batch} x {args.frames} frames x {(args.latent // 2) ** 2} "
          f"tokens = {tokens} tokens/step; median of {args.reps}")
    print("| model | params | step (s) | tokens/s | ratio |")
    print("|---|---|---|---|---|")
    print(f"| worldsim DiT (all conditioning) | {n_dit / 1e6:.2f}M | {ta:.3f} | {tokens / ta:.0f} | {ta / tb:.2f}x |")
    print(f"| plain nn.TransformerEncoder | {n_plain / 1e6:.2f}M | {tb:.3f} | {tokens / tb:.0f} | 1.00x |")
    print(f"peak memory: {peak:.0f} MiB ({'CUDA allocated' if device.type == 'cuda' else 'process max RSS'})")
    if device.type == "cuda":
        flops = 6 * n_dit * tokens + 12 * depth * width * tokens * args.frames * (args.latent // 2) ** 2
        print(f"MFU (6N + attention FLOPs per token, peak {args.peak_tflops} TFLOP/s): "
              f"{flops / ta / (args.peak_tflops * 1e12):.1%}")


if __name__ == "__main__":
    main()
