"""The paper's 2D U-Net and its skip-free teacher.

Written by hand because no library U-Net matches the official parameter counts: the SIKD teacher is
the *same* network with every encoder→decoder skip removed, so both must come from one definition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "count_parameters", "architecture_of", "FEATURE_LAYERS", "check_feature_layer"]

DEPTH = 4  # number of 2× poolings; inputs are padded to a multiple of 2**DEPTH
# where ``forward(x, features_at=...)`` takes the features it returns: the last decoder block (what SIKD
# distils) or the bottleneck (the deepest encoder output, identical in structure for student and teacher)
FEATURE_LAYERS = ("last_decoder", "bottleneck")


def check_feature_layer(features_at: str) -> str:
    """Refuse a layer name no network exposes, naming the valid ones."""
    if features_at not in FEATURE_LAYERS:
        raise ValueError(f"features_at must be one of {FEATURE_LAYERS}, got {features_at!r}")
    return features_at


class ConvBlock(nn.Sequential):
    """Two 3×3 conv + BatchNorm + ReLU layers (the official block; convs keep their bias)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class UpConv(nn.Sequential):
    """Bilinear ×2 upsampling then one 3×3 conv + BatchNorm + ReLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net with encoder widths b, 2b, 4b, 8b, 16b; ``skip_connections=False`` gives the SIKD teacher.

    ``forward`` returns ``(logits, features)``: ``features`` is the output of the last decoder block
    (``base_channels`` channels at input resolution, after BN+ReLU), the tensor SIKD distils.
    Any input height/width works: it is zero-padded to a multiple of 16 and the outputs are cropped back.
    ``forward(x, features_at="bottleneck")`` returns the deepest encoder block's output instead
    (``16 · base_channels`` channels at 1/16 of the padded size, not cropped) for the distillation-layer
    ablation; the logits are the same either way.

    Parameters for 1 input channel and 4 classes: base 64 student 34,526,084, teacher 31,392,644 (the
    official code's); base 32 student 8,636,868, teacher 7,853,508.
    """

    backbone = "unet"  # the protocol train() relies on: see sikd_utils.backbones

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        base_channels: int = 64,
        skip_connections: bool = True,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("base_channels", base_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (background + one class), got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.base_channels = base_channels
        self.skip_connections = bool(skip_connections)

        widths = [base_channels * 2**i for i in range(DEPTH + 1)]  # 64, 128, 256, 512, 1024
        self.encoders = nn.ModuleList(
            [ConvBlock(in_channels, widths[0])] + [ConvBlock(widths[i - 1], widths[i]) for i in range(1, DEPTH + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList([UpConv(widths[i], widths[i - 1]) for i in range(DEPTH, 0, -1)])
        merge = 2 if self.skip_connections else 1
        self.decoders = nn.ModuleList([ConvBlock(merge * widths[i - 1], widths[i - 1]) for i in range(DEPTH, 0, -1)])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor, features_at: str = "last_decoder") -> tuple[torch.Tensor, torch.Tensor]:
        check_feature_layer(features_at)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects input (batch, {self.in_channels}, height, width), got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        multiple = 2**DEPTH
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        self._check_input(x, h + pad_h, w + pad_w)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))

        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips[:-1])):
            x = up(x)
            if self.skip_connections:
                x = torch.cat([skip, x], dim=1)
            x = decoder(x)
        features = x
        logits = self.head(features)
        if pad_h or pad_w:
            logits, features = logits[..., :h, :w], features[..., :h, :w]
        if features_at == "bottleneck":
            return logits, skips[-1]
        return logits, features

    def _check_input(self, x: torch.Tensor, padded_h: int, padded_w: int) -> None:
        """What torch would reject deep inside (or pass on silently), said at the network's door: metadata checks
        only, plus a finiteness check on CPU tensors (on a GPU it would cost a sync every step; data reaching
        training there went through :class:`~sikd_utils.data.Case`, which refuses NaN and inf)."""
        if not x.is_floating_point():
            raise TypeError(f"UNet expects a floating-point image tensor, got {x.dtype} of shape {tuple(x.shape)}: "
                            "convert it with .float()")
        weights = self.head.weight.dtype
        if x.dtype != weights and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"UNet's weights are {weights} but its input is {x.dtype}: convert the input "
                            f"(x.to({weights})) or the network (.to({x.dtype})), or run under autocast")
        if x.shape[-2] == 0 or x.shape[-1] == 0:  # an empty batch is fine: a DDP rank's idle step sends one
            raise ValueError(f"UNet got an empty input of shape {tuple(x.shape)}: height and width must be >= 1")
        bottleneck = x.shape[0] * (padded_h // 2**DEPTH) * (padded_w // 2**DEPTH)
        if self.training and bottleneck == 1:
            raise ValueError(f"UNet in training mode got input {tuple(x.shape)}: its bottleneck holds one value per "
                             "channel, which batch norm cannot normalise; use a batch of 2 or more, images larger "
                             f"than {2**DEPTH} px, or model.eval()")
        if x.device.type == "cpu" and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"UNet input holds {bad} non-finite value(s) (NaN or inf) of {x.numel()}; clean the "
                             "image first")

    def extra_repr(self) -> str:
        return f"skip_connections={self.skip_connections}"


def architecture_of(model: nn.Module) -> dict:
    """What defines ``model``'s weights (stored in every checkpoint): its constructor arguments and backbone.

    Works for our ``UNet`` and every wrapper of :mod:`sikd_utils.backbones`;
    :func:`sikd_utils.backbones.from_architecture` rebuilds the network from it.
    """
    return {
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "base_channels": model.base_channels,
        "skip_connections": model.skip_connections,
        "backbone": model.backbone,
        # only where set (a SwinUNETR teacher of the ablation), so that every earlier checkpoint's dict holds
        **({"residual_projection": True} if getattr(model, "residual_projection", False) else {}),
    }


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
