"""Device, seeding and numeric precision: decided in one place for training, inference and benchmarks.

Precision ``"auto"`` picks by hardware: bf16 autocast on CUDA GPUs of compute capability 8.0 or newer
(A100, H100, L4, RTX 30xx…), fp16 autocast with a :class:`torch.amp.GradScaler` below 8.0 (Colab's T4
is 7.5: ``torch.cuda.is_bf16_supported()`` says True there, but bf16 is emulated and cuDNN has no bf16
convolutions, so it runs several times slower than fp16), and plain fp32 on the CPU. Any of
``"fp32"``, ``"fp16"``, ``"bf16"`` can be forced instead, e.g. to compare them.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

__all__ = ["PRECISIONS", "BF16_MIN_CAPABILITY", "resolve_device", "set_seed", "cuda_capability",
           "choose_precision", "resolve_precision", "autocast", "grad_scaler"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
#: compute capability from which bf16 runs natively (Ampere)
BF16_MIN_CAPABILITY = (8, 0)
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else as ``torch.device`` reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cuda_capability(device: str | torch.device = "auto") -> tuple[int, int] | None:
    """Compute capability ``(major, minor)`` of a CUDA device; None for CPU devices."""
    device = resolve_device(device)
    if device.type != "cuda":
        return None
    return tuple(torch.cuda.get_device_capability(device))


def choose_precision(device: str | torch.device = "auto", capability: tuple[int, int] | None = None) -> str:
    """The precision ``"auto"`` means on ``device``: ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    ``capability`` (e.g. ``(7, 5)``) replaces the query of the GPU, so every branch can be checked
    without that GPU; it only matters for CUDA devices.
    """
    device = resolve_device(device)
    if device.type != "cuda":
        return "fp32"
    if capability is None:
        capability = cuda_capability(device)
    return "bf16" if tuple(capability) >= BF16_MIN_CAPABILITY else "fp16"


def resolve_precision(precision: str, device: str | torch.device = "auto",
                      capability: tuple[int, int] | None = None) -> str:
    """``precision`` checked, with ``"auto"`` replaced by :func:`choose_precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return choose_precision(device, capability)
    return precision


def autocast(device: str | torch.device, precision: str):
    """Autocast context for an already resolved ``precision`` (fp32: no autocast at all)."""
    device = resolve_device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise ValueError(f"autocast needs a resolved precision (fp32, fp16 or bf16), got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def grad_scaler(device: str | torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaler for training: active for fp16 (small gradients would underflow), a no-op otherwise.

    A disabled scaler passes ``scale``/``step``/``update`` straight through, so one training loop
    serves every precision.
    """
    device = resolve_device(device)
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
