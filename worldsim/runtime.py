"""Device and precision: what the model, training and the dream all need."""

from __future__ import annotations

import contextlib

import torch

from worldsim.errors import InputError


def pick_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda:1`, `cpu` ... are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={name} asked for CUDA, but this torch has no CUDA device; use device=cpu")
    return dev


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU (AMX) and GPU, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise InputError(f"precision must be bf16 or fp32, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16)
