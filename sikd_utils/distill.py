"""The SIKD student loss: cross-entropy on labels plus λ · MSE to the frozen teacher's features."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["SIKDLoss", "sikd_loss", "DEFAULT_WEIGHT"]

DEFAULT_WEIGHT = 2.0  # λ in the paper and the official code


class SIKDLoss(NamedTuple):
    total: torch.Tensor
    ce: torch.Tensor
    mse: torch.Tensor


def sikd_loss(
    student_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    target: torch.Tensor,
    weight: float = DEFAULT_WEIGHT,
) -> SIKDLoss:
    """``CE(student_logits, target) + weight · MSE(student_features, teacher_features)``.

    Returns the total and both parts so training can log them. The teacher's features are detached:
    gradients flow into the student only. ``target`` is (B, H, W) or (B, 1, H, W) class indices.
    Features are the last decoder block's outputs (no adapter: the two must have the same shape).
    """
    if student_features.shape != teacher_features.shape:
        raise ValueError(
            f"student features {tuple(student_features.shape)} and teacher features "
            f"{tuple(teacher_features.shape)} must have the same shape (same base_channels and input size)"
        )
    if target.ndim == student_logits.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape[0] != student_logits.shape[0] or target.shape[1:] != student_logits.shape[2:]:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits {tuple(student_logits.shape)}"
        )
    ce = F.cross_entropy(student_logits.float(), target.long())
    mse = F.mse_loss(student_features.float(), teacher_features.detach().float())
    return SIKDLoss(ce + weight * mse, ce, mse)
