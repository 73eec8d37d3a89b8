"""The SIKD student loss — cross-entropy on labels plus λ · MSE to the frozen teacher's features — and
:func:`sikd_step`, one whole training step: the function notebook 04 prints and ``train()`` runs. Its
``teacher_input`` is the class-wise mean; the plain feature-distillation control passes the raw images.
``scaler`` is the fp16 loss scaler of :mod:`sikd_utils.runtime` (a no-op in every other precision)."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .averaging import class_wise_mean

__all__ = ["SIKDLoss", "sikd_loss", "sikd_step", "check_finite", "DEFAULT_WEIGHT"]

DEFAULT_WEIGHT = 2.0  # λ in the paper and the official code
# loss scaling is for fp16 training only (train() passes its own scaler); disabled, it passes straight through
NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)


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
    from .checks import check_float

    for name, value in (("student_logits", student_logits), ("student_features", student_features),
                        ("teacher_features", teacher_features), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"sikd_loss: {name} must be a torch.Tensor, got {type(value).__name__}")
    weight = check_float("sikd_loss weight (λ)", weight, 0.0)
    if student_logits.ndim != 4:
        raise ValueError(f"sikd_loss: student_logits must be (B, classes, H, W), got shape "
                         f"{tuple(student_logits.shape)}")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"sikd_loss: target must hold integer class indices, got dtype {target.dtype} "
                        "(a float target would be truncated to class indices)")
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
    num_classes = student_logits.shape[1]
    if ((target < 0) | (target >= num_classes)).any():
        raise ValueError(f"sikd_loss: target values must lie in [0, {num_classes}) (the logits' classes), "
                         f"found [{int(target.min())}, {int(target.max())}]")
    ce = F.cross_entropy(student_logits.float(), target.long())
    mse = F.mse_loss(student_features.float(), teacher_features.detach().float())
    return SIKDLoss(ce + weight * mse, ce, mse)


def check_finite(loss: SIKDLoss) -> None:
    """Stop before an update that would spread NaN or inf into every weight."""
    if not torch.isfinite(loss.total):
        raise FloatingPointError(f"the loss became {loss.total.item()}: check the data for NaN/inf "
                                 "or lower the learning rate")


def sikd_step(student, teacher, optimizer, images, labels, weight=DEFAULT_WEIGHT, autocast=contextlib.nullcontext,
              teacher_input=class_wise_mean, scaler=NO_SCALING):
    """One SIKD training step on raw ``images`` and their ``labels``; returns the loss parts."""
    with autocast():  # bf16 or fp16 on a GPU; does nothing on a CPU
        with torch.no_grad():  # the teacher is frozen (and in eval mode): no gradients reach it
            mean_images = teacher_input(images, labels, teacher.num_classes)  # shape + intensity only
            _, teacher_features = teacher(mean_images)  # output of its last decoder block
        logits, student_features = student(images)  # the ordinary U-Net sees the raw images
        loss = sikd_loss(logits, student_features, teacher_features, labels, weight)  # CE + λ·MSE
    check_finite(loss)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss.total).backward()  # gradients reach the student only (scaled under fp16)
    scaler.step(optimizer)
    scaler.update()
    return loss
