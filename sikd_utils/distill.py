"""The SIKD student loss — cross-entropy on labels plus λ · MSE to the frozen teacher's features — and
:func:`sikd_step`, one whole training step: the function notebook 04 prints and ``train()`` runs. Its
``teacher_input`` is the class-wise mean; the plain feature-distillation control passes the raw images.
``scaler`` is the fp16 loss scaler of :mod:`sikd_utils.runtime` (a no-op in every other precision).

For comparison (issue 13) the same step can distil in other ways, chosen by name (the default is
always SIKD's): ``method`` — :func:`feature_mse`, :func:`logit_kd` or :func:`attention_transfer`;
``layer`` — the last decoder block or the bottleneck; and what the teacher sees — the class-wise mean
image, the one-hot label map or the raw image (:data:`TEACHER_INPUTS`)."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .averaging import class_wise_mean

__all__ = ["SIKDLoss", "sikd_loss", "sikd_step", "check_finite", "DEFAULT_WEIGHT", "DEFAULT_TEMPERATURE",
           "DISTILL_METHODS", "TEACHER_INPUTS", "feature_mse", "logit_kd", "attention_map", "attention_transfer",
           "label_one_hot", "raw_images", "teacher_input_function", "check_choice"]

DEFAULT_WEIGHT = 2.0  # λ in the paper and the official code
#: distillation terms :func:`sikd_loss` knows; the first is SIKD's
DISTILL_METHODS = ("feature_mse", "logit_kd", "attention_transfer")
#: what a teacher can see (:func:`teacher_input_function`); the first is SIKD's
TEACHER_INPUTS = ("mean_image", "label_onehot", "raw")
#: the temperature T of logit_kd, a common choice for Hinton-style KD (an ablation should vary it)
DEFAULT_TEMPERATURE = 4.0
# loss scaling is for fp16 training only (train() passes its own scaler); disabled, it passes straight through
NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)


class SIKDLoss(NamedTuple):
    """The loss and its parts. ``mse`` is the distillation term before the weight λ: the feature MSE for
    SIKD, the chosen method's term otherwise (the name is kept: training histories log it as ``mse``)."""

    total: torch.Tensor
    ce: torch.Tensor
    mse: torch.Tensor


def check_choice(name: str, value, choices: tuple) -> str:
    """Refuse a setting that is not one of ``choices``, naming them (before any work starts)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


# --------------------------------------------------------------------------- what the teacher sees
def raw_images(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The raw images themselves: the plain feature-distillation control's teacher input."""
    return images


def label_one_hot(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The label map as ``num_classes`` one-hot channels (dtype of ``images``): shape without intensity.

    The ablation that asks how much of SIKD's gain the mean image's *intensities* carry; a teacher fed
    this has ``in_channels = num_classes``.
    """
    if labels.ndim == images.ndim:
        labels = labels[:, 0]
    return F.one_hot(labels.long(), num_classes).movedim(-1, 1).to(images.dtype)


def teacher_input_function(name: str):
    """The function ``(images, labels, num_classes) -> teacher input`` called ``name`` in TEACHER_INPUTS."""
    check_choice("teacher_input", name, TEACHER_INPUTS)
    return {"mean_image": class_wise_mean, "label_onehot": label_one_hot, "raw": raw_images}[name]


# --------------------------------------------------------------------------- distillation terms
def feature_mse(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """SIKD's term: mean squared difference of the two feature maps, elementwise (no adapter, same shape).

    It asks the student to reproduce the teacher's features exactly, magnitudes included.
    """
    return F.mse_loss(student_features.float(), teacher_features.detach().float())


def logit_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s knowledge distillation, pixel by pixel: ``T² · mean over pixels of
    KL(softmax(teacher/T) ‖ softmax(student/T))``.

    The teacher's *predictions* are distilled instead of its features — it needs no matching widths.
    Softening by ``T > 1`` exposes which wrong classes the teacher finds plausible; ``T²`` keeps the
    gradient's size independent of ``T``.
    """
    t = float(temperature)
    log_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_t = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)  # (B, H, W): one KL divergence per pixel
    return kl.mean() * t * t


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis' spatial attention: channel-wise sum of squares, flattened per sample and
    scaled to unit L2 norm — ``(B, H·W)``. Where the network responds, not how (channels may differ)."""
    energy = features.float().pow(2).sum(dim=1).flatten(1)
    return F.normalize(energy, p=2.0, dim=1)


def attention_transfer(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Attention transfer: squared L2 distance between the two normalised attention maps, averaged over
    the batch (``2 − 2·cos`` of the maps, in [0, 4]).

    Only the spatial *pattern* is distilled, not the feature values — a looser constraint than SIKD's
    MSE. Squared (the paper writes the plain norm), the term has a gradient where the maps coincide.
    """
    diff = attention_map(student_features) - attention_map(teacher_features.detach())
    return diff.pow(2).sum(dim=1).mean()


def sikd_loss(
    student_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    target: torch.Tensor,
    weight: float = DEFAULT_WEIGHT,
    method: str = "feature_mse",
    teacher_logits: torch.Tensor | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    check_values: bool = True,
) -> SIKDLoss:
    """``CE(student_logits, target) + weight · MSE(student_features, teacher_features)``.

    Returns the total and both parts so training can log them. The teacher's features are detached:
    gradients flow into the student only. ``target`` is (B, H, W) or (B, 1, H, W) class indices.
    Features are the last decoder block's outputs (no adapter: the two must have the same shape).
    ``method`` swaps the MSE for another distillation term (:data:`DISTILL_METHODS`): ``"logit_kd"``
    needs ``teacher_logits`` and ``temperature`` and ignores the features; ``"attention_transfer"``
    needs features of the same batch and spatial size.
    """
    from .checks import check_float

    check_choice("distillation method", method, DISTILL_METHODS)
    for name, value in (("student_logits", student_logits), ("student_features", student_features),
                        ("teacher_features", teacher_features), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"sikd_loss: {name} must be a torch.Tensor, got {type(value).__name__}")
    weight = check_float("sikd_loss weight (λ)", weight, 0.0)
    if method == "logit_kd":
        temperature = check_float("kd temperature", temperature, 0.0, strict_minimum=True)
        if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.shape != student_logits.shape:
            raise ValueError(f"logit_kd needs teacher_logits shaped like the student's "
                             f"{tuple(student_logits.shape)}, got "
                             f"{getattr(teacher_logits, 'shape', teacher_logits)!r}")
    if student_logits.ndim != 4:
        raise ValueError(f"sikd_loss: student_logits must be (B, classes, H, W), got shape "
                         f"{tuple(student_logits.shape)}")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"sikd_loss: target must hold integer class indices, got dtype {target.dtype} "
                        "(a float target would be truncated to class indices)")
    if method == "attention_transfer":
        s_shape, t_shape = student_features.shape, teacher_features.shape
        if s_shape[:1] + s_shape[2:] != t_shape[:1] + t_shape[2:]:
            raise ValueError(f"attention_transfer needs student and teacher features of the same batch and "
                             f"spatial size, got {tuple(s_shape)} and {tuple(t_shape)}")
        if s_shape[2:].numel() == 1:
            raise ValueError(f"attention_transfer on features of one pixel ({tuple(s_shape)}) distils nothing (every "
                             "normalised map is 1); use larger images or distill_layer='last_decoder'")
    elif method == "feature_mse" and student_features.shape != teacher_features.shape:
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
    # the value check reads the tensor back (a host sync, a graph break under torch.compile): callers that
    # validated their labels up front (train() does) may skip it with check_values=False
    if check_values and ((target < 0) | (target >= num_classes)).any():
        raise ValueError(f"sikd_loss: target values must lie in [0, {num_classes}) (the logits' classes), "
                         f"found [{int(target.min())}, {int(target.max())}]")
    ce = F.cross_entropy(student_logits.float(), target.long())
    if method == "feature_mse":
        term = feature_mse(student_features, teacher_features)
    elif method == "logit_kd":
        term = logit_kd(student_logits, teacher_logits, temperature)
    else:
        term = attention_transfer(student_features, teacher_features)
    return SIKDLoss(ce + weight * term, ce, term)


def check_finite(loss: SIKDLoss) -> None:
    """Stop before an update that would spread NaN or inf into every weight."""
    if not torch.isfinite(loss.total):
        raise FloatingPointError(f"the loss became {loss.total.item()}: check the data for NaN/inf "
                                 "or lower the learning rate")


def sikd_step(student, teacher, optimizer, images, labels, weight=DEFAULT_WEIGHT, autocast=contextlib.nullcontext,
              teacher_input=class_wise_mean, scaler=NO_SCALING, method="feature_mse", layer="last_decoder",
              temperature=DEFAULT_TEMPERATURE, check_values=True):
    """One SIKD training step on raw ``images`` and their ``labels``; returns the loss parts."""
    with autocast():  # bf16 or fp16 on a GPU; does nothing on a CPU
        with torch.no_grad():  # the teacher is frozen (and in eval mode): no gradients reach it
            mean_images = teacher_input(images, labels, teacher.num_classes)  # shape + intensity only
            teacher_logits, teacher_features = teacher(mean_images, features_at=layer)  # its last decoder block
        logits, student_features = student(images, features_at=layer)  # the ordinary U-Net sees the raw images
        loss = sikd_loss(logits, student_features, teacher_features, labels, weight,  # CE + λ·MSE
                         method, teacher_logits, temperature, check_values)  # the defaults: SIKD; others for comparison
    if check_values:  # off in train()'s compiled step (a host sync), which checks labels and loss outside it
        check_finite(loss)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss.total).backward()  # gradients reach the student only (scaled under fp16)
    scaler.step(optimizer)
    scaler.update()
    return loss
