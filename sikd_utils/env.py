"""What the notebook is running on: printed at the top of every notebook."""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["report"]


def report() -> dict:
    """Python, torch, MONAI and device facts, the precision ``"auto"`` picks, and a hint without a GPU."""
    import torch

    from .runtime import choose_precision, cuda_capability

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }
    try:
        from importlib.metadata import version

        info["monai"] = version("monai")
        info["sikd_utils"] = version("sikd-utils")
    except Exception:  # not installed as a distribution (e.g. running from a checkout)
        info.setdefault("sikd_utils", "source checkout")
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
        info["device"] = "cuda"
        info["gpu_capability"] = "{}.{}".format(*cuda_capability("cuda"))
    else:
        info["device"] = "cpu"
    info["precision"] = choose_precision(info["device"])
    if info["precision"] == "fp16":
        info["precision_note"] = "fp16 autocast + GradScaler: bf16 is not native below compute capability 8.0"
    if not info["cuda"]:
        info["hint"] = "no GPU: the CPU defaults apply (small U-Nets, 64-px images); on Colab choose a GPU runtime to scale up"
    return info
