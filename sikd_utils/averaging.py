"""Class-wise mean images: the teacher's input in SIKD.

Every pixel of class k is replaced by the image's mean intensity over its class-k pixels (per sample,
per channel). What survives is the label's *shape* and the *intensity* of each class; texture,
noise and fine detail are gone. Computed on the fly from the same augmented image and label the
student sees.
"""

from __future__ import annotations

import torch

__all__ = ["class_wise_mean"]


def class_wise_mean(image: torch.Tensor, label: torch.Tensor, num_classes: int, *,
                    check_values: bool = True) -> torch.Tensor:
    """Replace each pixel of class k by the mean of its sample's class-k pixels, per channel.

    Args:
        image: float tensor ``(B, C, *spatial)``, e.g. ``(B, C, H, W)``; any number of channels.
        label: integer tensor ``(B, *spatial)`` or ``(B, 1, *spatial)`` with values in
            ``[0, num_classes)``.
        num_classes: number of label classes, background included.
        check_values: check that every label lies in ``[0, num_classes)`` and every pixel is finite. The
            check reads them back to the host (a sync, and a graph break under ``torch.compile``); skip it only for
            labels validated before (out-of-range labels would then fail inside ``scatter_add_``).

    Returns:
        A tensor shaped and typed like ``image``. Absent classes contribute nothing (and so never
        produce NaN). Uses scatter/gather over flattened pixels: one pass, no loop over the batch;
        sums are accumulated in float32 even under autocast.
    """
    if not torch.is_tensor(image) or not torch.is_tensor(label):
        raise TypeError("class_wise_mean expects torch tensors for image and label")
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor, got {image.dtype}")
    if image.ndim < 3:
        raise ValueError(f"image must be (B, C, *spatial), got shape {tuple(image.shape)}")
    if label.ndim == image.ndim and label.shape[1] == 1:
        label = label[:, 0]
    if label.shape[0] != image.shape[0] or label.shape[1:] != image.shape[2:]:
        raise ValueError(
            f"label shape {tuple(label.shape)} does not match image shape {tuple(image.shape)}: "
            "expected (B, *spatial) or (B, 1, *spatial)"
        )
    if label.is_floating_point() or label.dtype == torch.bool:
        raise TypeError(f"label must be an integer tensor, got {label.dtype}")
    if check_values and label.numel():
        lo, hi, bad = (int(v) for v in torch.stack([label.min().long(), label.max().long(),
                                                     (~torch.isfinite(image)).sum()]).tolist())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"label values must lie in [0, {num_classes}), found min {lo} and max {hi}")
        if bad:
            raise ValueError(f"image holds {bad} non-finite value(s) (NaN or inf) of {image.numel()}: a class mean "
                             "would spread them over the whole class; clean the image first")

    b, c = image.shape[:2]
    pixels = image.reshape(b, c, -1).float()
    index = label.reshape(b, 1, -1).long()
    sums = pixels.new_zeros(b, c, num_classes).scatter_add_(2, index.expand(-1, c, -1), pixels)
    counts = pixels.new_zeros(b, 1, num_classes).scatter_add_(2, index, torch.ones_like(index, dtype=pixels.dtype))
    means = sums / counts.clamp_min(1.0)
    out = means.gather(2, index.expand(-1, c, -1))
    return out.reshape(image.shape).to(image.dtype)
