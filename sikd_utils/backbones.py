"""MONAI segmentation networks in SIKD's form: each as student and as skip-free teacher.

Every network here keeps the protocol :func:`sikd_utils.train.train` relies on (our ``UNet`` keeps it
too): attributes ``in_channels``, ``num_classes``, ``base_channels``, ``skip_connections`` and
``backbone``, and ``forward(x, features_at="last_decoder") -> (logits, features)`` where ``features``
is the output of the last decoder block (or, with ``features_at="bottleneck"``, of the deepest
block both student and teacher share). The student *is* MONAI's network (a subclass that only adds the
features to ``forward``, so its weights load into MONAI's class and back); the teacher is the same
network with every encoder→decoder skip removed, as in the paper.

Backbones:

* ``"unet"`` — our U-Net (:mod:`sikd_utils.models`), the paper's network;
* ``"swin_unetr"`` — MONAI ``SwinUNETR`` in 2D (a Swin-transformer encoder, a convolutional decoder),
  the transformer family of the paper's baselines (TransUNet, Swin-Unet);
* ``"basic_unet"`` — MONAI ``BasicUNet``: a convolutional U-Net from another school (instance norm,
  LeakyReLU, transposed-convolution upsampling, five levels). Chosen over ``AttentionUnet`` because its
  attention gates act *on the skips*: without skips nothing is left of what makes it an attention
  U-Net, so its teacher would be a plain encoder-decoder, and MONAI's own ``UpCat`` block already has
  a documented skip-free form (``cat_chns=0``, ``x_e=None``), so the teacher is built from MONAI's
  blocks without any surgery of ours.
"""

from __future__ import annotations

import importlib

from torch import nn

from .models import UNet

__all__ = ["BACKBONES", "SwinUNETR2D", "BasicUNet2D", "build_backbone", "from_architecture", "check_backbone",
           "is_segmenter", "SEGMENTER_ATTRIBUTES"]
# the MONAI wrappers live in monai_backbones, imported on first use: importing MONAI's networks takes
# seconds, and the default backbone never needs them
_MONAI_CLASSES = {"swin_unetr": "SwinUNETR2D", "basic_unet": "BasicUNet2D"}

BACKBONES = ("unet", "swin_unetr", "basic_unet")
# what train(), checkpoints and distillation read from a model (see the module docstring)
SEGMENTER_ATTRIBUTES = ("in_channels", "num_classes", "base_channels", "skip_connections", "backbone")


def check_backbone(backbone: str) -> str:
    """Refuse an unknown backbone name before anything is built, naming the valid ones."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    return backbone


def is_segmenter(model) -> bool:
    """True for a network :func:`build_backbone` builds (any object with the protocol's attributes)."""
    return isinstance(model, nn.Module) and all(hasattr(model, a) for a in SEGMENTER_ATTRIBUTES) \
        and model.backbone in BACKBONES


def __getattr__(name: str):
    if name in _MONAI_CLASSES.values():
        return getattr(importlib.import_module(f"{__package__}.monai_backbones"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_backbone(backbone: str, in_channels: int, num_classes: int, base_channels: int,
                   skip_connections: bool = True, residual_projection: bool = False) -> nn.Module:
    """A freshly initialised network of ``backbone``; ``skip_connections=False`` gives its SIKD teacher.
    ``residual_projection``: SwinUNETR's skip-free teacher with its student's residual projections
    (:class:`~sikd_utils.monai_backbones.SwinUNETR2D`)."""
    cls = UNet if check_backbone(backbone) == "unet" else __getattr__(_MONAI_CLASSES[backbone])
    if residual_projection:
        if backbone != "swin_unetr":
            raise ValueError(f"residual_projection is a SwinUNETR teacher's option, got backbone {backbone!r}")
        return cls(in_channels, num_classes, base_channels, skip_connections, residual_projection=True)
    return cls(in_channels, num_classes, base_channels, skip_connections)


def from_architecture(architecture: dict) -> nn.Module:
    """Rebuild a network from :func:`sikd_utils.models.architecture_of`'s dict (without ``backbone``: ours)."""
    arch = dict(architecture)
    backbone = arch.pop("backbone", "unet")
    return build_backbone(backbone, **arch)
