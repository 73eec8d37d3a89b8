"""The MONAI networks of :mod:`sikd_utils.backbones`, each with its skip-free SIKD teacher.

Imported on first use (MONAI's networks take seconds to import); see that module for the protocol.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks.dynunet_block import UnetResBlock, get_conv_layer, get_norm_layer
from monai.networks.nets import BasicUNet, SwinUNETR
from monai.networks.nets.basic_unet import UpCat
from torch import nn

from .models import check_feature_layer

__all__ = ["SwinUNETR2D", "BasicUNet2D"]


def _check_sizes(in_channels, num_classes, base_channels) -> None:
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("base_channels", base_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (background + one class), got {num_classes}")


def _pad(model: nn.Module, x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Check the input's shape and zero-pad it to ``multiple`` (outputs are cropped back), as UNet does."""
    if x.ndim != 4 or x.shape[1] != model.in_channels:
        raise ValueError(f"{type(model).__name__} expects input (batch, {model.in_channels}, height, width), "
                         f"got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x, h, w


def _result(logits, last, bottleneck, h, w, features_at):
    logits, last = logits[..., :h, :w], last[..., :h, :w]
    return (logits, bottleneck) if features_at == "bottleneck" else (logits, last)


class _UpBlockWithoutSkip(nn.Module):
    """MONAI's ``UnetrUpBlock`` less its skip: the same transposed convolution (×2), then the same kind
    of residual block, on ``out_channels`` channels instead of the ``2 · out_channels`` of upsampled
    features concatenated with the skip; its input now as wide as its output, MONAI's ``UnetResBlock`` gives its
    residual path no 1×1 projection. ``residual_projection=True`` adds one anyway, as the student's block has it:
    a 1×1 convolution and a norm, so that the block's output, like the student's, is the sum of two normalised
    maps (bounded; see :mod:`sikd_utils.feature_scale`). Built from MONAI's own layers."""

    def __init__(self, in_channels: int, out_channels: int, norm_name, residual_projection: bool = False):
        super().__init__()
        self.transp_conv = get_conv_layer(2, in_channels, out_channels, kernel_size=2, stride=2, conv_only=True,
                                          is_transposed=True)
        self.conv_block = UnetResBlock(2, out_channels, out_channels, kernel_size=3, stride=1, norm_name=norm_name)
        if residual_projection:  # MONAI's forward applies conv3 and norm3 to the residual wherever they exist
            block = self.conv_block
            block.conv3 = get_conv_layer(2, out_channels, out_channels, kernel_size=1, stride=1, act=None, norm=None,
                                         conv_only=False)
            block.norm3 = get_norm_layer(name=norm_name, spatial_dims=2, channels=out_channels)
            block.downsample = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(self.transp_conv(x))


class SwinUNETR2D(SwinUNETR):
    """MONAI ``SwinUNETR(spatial_dims=2, feature_size=base_channels)``; ``skip_connections=False`` gives
    its SIKD teacher.

    Swin UNETR's decoder takes five skips: the raw input through ``encoder1`` (full resolution), the
    Swin stages' outputs 0–2 through ``encoder2``–``encoder4``, and stage 3's output directly. The
    teacher (1) deletes ``encoder1``–``encoder4``, whose outputs only ever fed skips, and (2) rebuilds
    each of ``decoder5``…``decoder1`` as ``_UpBlockWithoutSkip``: no concatenation, so the residual
    block's first convolution takes half the channels and, its input now as wide as its output, its
    residual path needs no 1×1 projection (MONAI's ``UnetResBlock`` adds one only when widths differ).
    The Swin encoder (``swinViT``), the bottleneck block ``encoder10`` and the output head are
    unchanged, so the decoder sees the image only through the bottleneck. ``features``: ``decoder1``'s
    output (``base_channels`` channels, full resolution); ``features_at="bottleneck"``: ``encoder10``'s
    (``16 · base_channels`` channels at 1/32).

    ``residual_projection=True`` (a teacher only) gives every rebuilt block the student's 1×1 projection and norm
    on its residual path: without it the teacher's last block ends in an unnormalised sum that its student, whose
    block ends in two normalised maps, cannot match in scale (:mod:`sikd_utils.feature_scale`; the ablation
    ``swin_unetr_projected``).

    ``base_channels`` must be a multiple of 12 (MONAI: the Swin stages' attention heads, 3-6-12-24,
    divide the widths); inputs are zero-padded to a multiple of 32 (five ×2 reductions). Instance norm
    needs more than one pixel per channel at the bottleneck when training: inputs of at least 64 px.

    Parameters for 1 input channel and 4 classes: base 24 (MONAI's default) student 6,302,278, teacher
    5,534,230 (5,583,766 with ``residual_projection``); base 36 student 14,151,586, teacher 12,423,658
    (12,535,114); base 32 is not possible.
    """

    backbone = "swin_unetr"
    MULTIPLE = 32
    _DECODERS = (("decoder5", 16, 8), ("decoder4", 8, 4), ("decoder3", 4, 2), ("decoder2", 2, 1), ("decoder1", 1, 1))

    def __init__(self, in_channels: int = 1, num_classes: int = 4, base_channels: int = 24,
                 skip_connections: bool = True, residual_projection: bool = False):
        _check_sizes(in_channels, num_classes, base_channels)
        if residual_projection and skip_connections:
            raise ValueError("residual_projection is for the skip-free teacher (skip_connections=False): the blocks "
                             "with skips have their projection already")
        if base_channels % 12:
            near = [v for v in (12 * (base_channels // 12), 12 * (base_channels // 12 + 1)) if v > 0]
            raise ValueError(f"swin_unetr needs base_channels (MONAI's feature_size) divisible by 12, got "
                             f"{base_channels}; use e.g. {' or '.join(map(str, near))}")
        super().__init__(in_channels=in_channels, out_channels=num_classes, feature_size=base_channels,
                         spatial_dims=2)
        self.in_channels, self.num_classes, self.base_channels = in_channels, num_classes, base_channels
        self.skip_connections = bool(skip_connections)
        self.residual_projection = bool(residual_projection)
        if not self.skip_connections:
            for name in ("encoder1", "encoder2", "encoder3", "encoder4"):
                delattr(self, name)
            for name, mult_in, mult_out in self._DECODERS:
                setattr(self, name, _UpBlockWithoutSkip(mult_in * base_channels, mult_out * base_channels, "instance",
                                                        self.residual_projection))

    def forward(self, x: torch.Tensor, features_at: str = "last_decoder") -> tuple[torch.Tensor, torch.Tensor]:
        check_feature_layer(features_at)
        x, h, w = _pad(self, x, self.MULTIPLE)
        hidden = self.swinViT(x, self.normalize)  # five stages: 1/2, 1/4, 1/8, 1/16, 1/32
        bottleneck = self.encoder10(hidden[4])
        if self.skip_connections:  # MONAI's forward, step for step
            d = self.decoder5(bottleneck, hidden[3])
            d = self.decoder4(d, self.encoder4(hidden[2]))
            d = self.decoder3(d, self.encoder3(hidden[1]))
            d = self.decoder2(d, self.encoder2(hidden[0]))
            last = self.decoder1(d, self.encoder1(x))
        else:
            last = self.decoder1(self.decoder2(self.decoder3(self.decoder4(self.decoder5(bottleneck)))))
        return _result(self.out(last), last, bottleneck, h, w, features_at)

    def extra_repr(self) -> str:
        return f"skip_connections={self.skip_connections}" + (", residual_projection=True" if self.residual_projection
                                                              else "")


# --------------------------------------------------------------------------- BasicUNet
class BasicUNet2D(BasicUNet):
    """MONAI ``BasicUNet(spatial_dims=2)`` with features ``(b, b, 2b, 4b, 8b, b)`` for ``b = base_channels``
    (MONAI's default widths at b = 32); ``skip_connections=False`` gives its SIKD teacher.

    The teacher rebuilds each decoder block ``upcat_4``…``upcat_1`` as MONAI's ``UpCat`` with
    ``cat_chns=0`` and calls it with ``x_e=None``: MONAI's documented skip-free branch, which
    convolves the upsampled features alone (the first convolution takes only the upsampled channels).
    The encoder (``conv_0``, ``down_1``…``down_4``) and ``final_conv`` are unchanged. ``features``:
    ``upcat_1``'s output (``b`` channels, full resolution); ``features_at="bottleneck"``: ``down_4``'s
    (``8b`` channels at 1/16). Inputs are zero-padded to a multiple of 16.

    Parameters for 1 input channel and 4 classes at base 32: student 1,978,532, teacher 1,775,780.
    """

    backbone = "basic_unet"
    MULTIPLE = 16
    # BasicUNet's own defaults, passed explicitly so that the teacher's blocks are built the same way
    ACT = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True})
    NORM = ("instance", {"affine": True})

    def __init__(self, in_channels: int = 1, num_classes: int = 4, base_channels: int = 32,
                 skip_connections: bool = True):
        _check_sizes(in_channels, num_classes, base_channels)
        b = base_channels
        fea = (b, b, 2 * b, 4 * b, 8 * b, b)
        super().__init__(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, features=fea,
                         act=self.ACT, norm=self.NORM, bias=True, dropout=0.0, upsample="deconv")
        self.in_channels, self.num_classes, self.base_channels = in_channels, num_classes, base_channels
        self.skip_connections = bool(skip_connections)
        if not self.skip_connections:
            for name, up_in, out, halves in (("upcat_4", fea[4], fea[3], True), ("upcat_3", fea[3], fea[2], True),
                                              ("upcat_2", fea[2], fea[1], True), ("upcat_1", fea[1], fea[5], False)):
                setattr(self, name, UpCat(2, up_in, 0, out, self.ACT, self.NORM, True, 0.0, "deconv", halves=halves))

    def forward(self, x: torch.Tensor, features_at: str = "last_decoder") -> tuple[torch.Tensor, torch.Tensor]:
        check_feature_layer(features_at)
        x, h, w = _pad(self, x, self.MULTIPLE)
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        bottleneck = self.down_4(x3)
        if self.skip_connections:  # MONAI's forward, step for step
            skips = (x3, x2, x1, x0)
        else:
            skips = (None, None, None, None)
        u = self.upcat_4(bottleneck, skips[0])
        u = self.upcat_3(u, skips[1])
        u = self.upcat_2(u, skips[2])
        last = self.upcat_1(u, skips[3])
        return _result(self.final_conv(last), last, bottleneck, h, w, features_at)

    def extra_repr(self) -> str:
        return f"skip_connections={self.skip_connections}"


