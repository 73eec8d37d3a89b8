"""sikd_utils — the code behind the SIKD Book.

Shape-intensity knowledge distillation (Dong, Du & Xu, Frontiers of Computer Science 2025):
train a skip-free teacher U-Net on class-wise mean images, then distil its last decoder features
into an ordinary U-Net trained on raw images.

Modules import in one direction: data → averaging → models/distill → train → metrics → evaluation
→ viz/experiment. Submodules load on first use, so ``import sikd_utils`` stays fast.
"""

from __future__ import annotations

import importlib

from ._project import VERSION as __version__

_SUBMODULES = ("averaging", "backbones", "configuration", "data", "distill", "env", "evaluation", "evidence",
               "experiment", "inference", "metrics", "models", "monai_backbones", "orchestration", "paper", "presets",
               "reproduce", "results", "runtime", "stats", "train", "viz", "lesson", "diagrams")

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
