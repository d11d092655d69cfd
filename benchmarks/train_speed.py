"""DiT training speed beside a plain `torch.nn.TransformerEncoder` of the same width, depth and token count.

    python benchmarks/train_speed.py                           # tiny preset, 8 frames of 16x16 latents, batch 8
    python benchmarks/train_speed.py --preset S --batch 4 --precision fp32
    python benchmarks/train_speed.py --preset B --device cuda --batch 32 --frames 16    # + MFU on a GPU
    python benchmarks/train_speed.py --teacher                # the reference recipe's step, by attention grouping
    python benchmarks/train_speed.py --norm                   # QK-norm: F.rms_norm against the hand-written one

--teacher times the reference recipe's training step instead (configs/recipe/voxel64_cpu.yaml: teacher forcing,
delta prediction, frame-causal attention, the action warp, pose memory over 16 frames of history, 14-frame windows
of 16x16x16 latents, batch 8) with the teacher-forced attention computed in one call under the full mask (group 0,
the reference) and a few query frames per call (`Attention.teacher`), alternately; `--compile` adds the same
steps under torch.compile.

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


def teacher_step(args, device, compiled: bool = False):
    """The reference recipe's training step (forward, backward, AdamW) on random latents and actions."""
    from worldsim.train.train_dit import TrainConfig, batch_loss

    tok = Tokenizer.build([CAPTION])
    cfg = TrainConfig(frames=args.frames, batch_size=args.batch, precision=args.precision,
                      model=DiTConfig(preset=args.preset, attention="causal", prev_frame=True, warp=True, memory=16),
                      flow=FlowConfig(objective="teacher_forcing", prediction="delta", p_pure_noise=0.5))
    spec = ModelSpec(dit=cfg.model, text=TextConfig(), vocab=tok.vocab, latent_channels=16, action_dim=5,
                     action_scale=[1.0] * 5, prediction="delta")
    model = WorldModel(spec).to(device)
    fwd = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b, nt, h = args.batch, args.frames, args.latent
    z, past = torch.randn(b, nt, 16, h, h, device=device), torch.randn(b, 16, 16, h, h, device=device)
    batch = {"captions": [CAPTION] * b, "prompts": [CAPTION] * b, "actions": torch.randn(b, nt, 5),
             "past_actions": torch.randn(b, 16, 5), "past_valid": torch.ones(b, 16, dtype=torch.bool)}
    g = torch.Generator().manual_seed(0)

    def step():
        loss = batch_loss(cfg, model, fwd, z, batch, g, past)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def teacher_main(args, device) -> None:
    """Time the recipe's step with each attention grouping (and compiled), alternately; print a table."""
    from worldsim.model import dit as dit_module

    default = dit_module.TEACHER_GROUP
    groups = [0, *args.groups]
    steps = {f"group {g}": (g, teacher_step(args, device)) for g in groups}
    if args.compile:
        steps.update({f"group {g}, compiled": (g, teacher_step(args, device, True))
                      for g in (0, default)})
    times: dict[str, list[float]] = {k: [] for k in steps}
    for rep in range(2 + args.reps):  # two warm-up rounds (the first compiles)
        for name, (g, step) in steps.items():
            dit_module.TEACHER_GROUP = g
            took = timed(step, device)
            if rep >= 2:
                times[name].append(took)
    base = statistics.median(times["group 0"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {device}, {args.precision}, {torch.get_num_threads()} threads; the reference recipe's step: preset "
          f"{args.preset}, batch {args.batch} x {args.frames} frames (teacher forcing: 2 x {args.frames} in the "
          f"sequence) x {(args.latent // 2) ** 2} tokens, memory 16; median of {args.reps}")
    print("| teacher attention | step (s) | speed-up |")
    print("|---|---|---|")
    for name, took in times.items():
        label = "one call, full mask" if name == "group 0" else name.replace("group", "query frames per call:")
        print(f"| {label}{' (default)' if name == f'group {default}' else ''} | "
              f"{statistics.median(took):.3f} | {base / statistics.median(took):.2f}x |")
    dit_module.TEACHER_GROUP = default


def norm_main(args, device) -> None:
    """The QK-norm as `F.rms_norm` (before 2026-12-02) and as worldsim's hand-written autograd Function, alternately, in
    the plain DiT step and the recipe's step; print a table."""
    import types

    import torch.nn.functional as F

    from worldsim.model import dit as dit_module

    ours = dit_module.RMSNorm.forward

    def torch_norm(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps).to(x.dtype)

    plain_args = types.SimpleNamespace(**{**vars(args), "frames": args.frames or 8})
    recipe_args = types.SimpleNamespace(**{**vars(args), "frames": args.frames or 14})
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {device}, {args.precision}; preset {args.preset}, batch {args.batch}; median of {args.reps}")
    print("| step | F.rms_norm (s) | hand-written (s) | speed-up |")
    print("|---|---|---|---|")
    for label, step in [(f"plain DiT step ({plain_args.frames} frames)", dit_step(plain_args, device)[0]),
                        (f"the recipe's step ({recipe_args.frames} frames)", teacher_step(recipe_args, device))]:
        times: dict[str, list[float]] = {"torch": [], "ours": []}
        try:
            for rep in range(2 + args.reps):
                for name, fwd in (("torch", torch_norm), ("ours", ours)):
                    dit_module.RMSNorm.forward = fwd
                    took = timed(step, device)
                    if rep >= 2:
                        times[name].append(took)
        finally:
            dit_module.RMSNorm.forward = ours
        a, b = statistics.median(times["torch"]), statistics.median(times["ours"])
        print(f"| {label} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")


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
    parser.add_argument("--frames", type=int, default=None, help="frames per window (8; --teacher: 14)")
    parser.add_argument("--latent", type=int, default=16, help="latent height and width (64 px frames / 4)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU bf16 dense peak for MFU (H100 SXM)")
    parser.add_argument("--teacher", action="store_true", help="time the reference recipe's teacher-forced step")
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 7],
                        help="--teacher: query frames per attention call to time beside one masked call")
    parser.add_argument("--compile", action="store_true", help="--teacher: also under torch.compile")
    parser.add_argument("--norm", action="store_true", help="time the QK-norm: F.rms_norm against worldsim's")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    if min(args.groups) < 1:
        parser.error(f"--groups must be 1 or more query frames per call, got {args.groups}")
    if args.norm:
        norm_main(args, device)
        return
    if args.teacher:
        args.frames = args.frames or 14  # the recipe's window
        teacher_main(args, device)
        return
    args.frames = args.frames or 8
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
