"""Whole-case prediction with a 2D model: slice, resize as in training, predict, resize back, reassemble.

Test slices go through the very functions that prepared the training slices
(:func:`~sikd_utils.data.slices.case_slices`, :func:`~sikd_utils.data.slices.resize_images`), so a model
never sees test data interpolated differently from what it was trained on. Logits, not labels, are
resized back to the case's in-plane size (bilinear) before the argmax, which keeps boundaries smooth.
Importing this module does not import MONAI.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .data.case import Case
from .data.slices import as_size, case_slices, resize_images
from .runtime import autocast, resolve_device, resolve_precision

__all__ = ["predict_case", "predict_cases", "check_channels"]


def check_channels(model: nn.Module, case: Case) -> None:
    """Raise a ValueError naming the case if its channel count differs from ``model.in_channels``.

    Models without an ``in_channels`` attribute are not checked (their first layer will complain).
    """
    expected = getattr(model, "in_channels", None)
    got = case.image.shape[0]
    if expected is not None and got != expected:
        raise ValueError(
            f"case {case.case_id!r} ({case.dataset}/{case.domain}) has {got} image channel(s), "
            f"but the model expects in_channels={expected}"
        )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode inside, and afterwards every submodule's own train/eval flag back as it was.

    Restoring per module (not ``model.train(was_training)``) keeps deliberate mixtures intact, e.g. a
    frozen teacher held in eval mode inside a model that is training.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def predict_case(
    model: nn.Module,
    case: Case,
    image_size: int | Sequence[int],
    batch_size: int = 16,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Predicted int64 label map of ``case``, shaped like ``case.label`` ((H, W) or (H, W, D)).

    Each slice (last axis) is resized to ``image_size`` exactly as the training slices were, run through
    ``model`` in eval mode under ``torch.no_grad()`` (autocast at ``precision``: ``"auto"`` as chosen by
    :func:`sikd_utils.runtime.choose_precision`), its logits resized back to
    (H, W) bilinearly and arg-maxed. ``model`` may return logits or a tuple whose first item is the
    logits (our ``UNet`` returns ``(logits, features)``). ``device=None`` uses the model's device; a
    given ``device`` moves the model there (in place, like ``nn.Module.to``). The model's train/eval
    mode is restored afterwards.
    """
    check_channels(model, case)
    size = as_size(image_size)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    batch_size = int(batch_size)
    if device is None:
        device = _model_device(model)
    else:
        device = resolve_device(device)
        model.to(device)
    precision = resolve_precision(precision, device)

    images, _ = case_slices(case)  # (N, C, H, W), a view of the case's array
    n, _, h, w = images.shape
    prediction = torch.empty((n, h, w), dtype=torch.int64)
    with _eval_mode(model), torch.no_grad():
        for start in range(0, n, batch_size):
            # a copy, so a model that writes into its input can never alter the case
            x = images[start : start + batch_size].to(device=device, dtype=torch.float32, copy=True)
            x = resize_images(x, size)
            with autocast(device, precision):
                out = model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            logits = resize_images(logits.float(), (h, w))
            prediction[start : start + x.shape[0]] = logits.argmax(dim=1).cpu()

    if case.label.ndim == 2:
        return prediction[0].numpy()
    return np.ascontiguousarray(prediction.permute(1, 2, 0).numpy())


def predict_cases(
    model: nn.Module,
    cases: Iterable[Case],
    image_size: int | Sequence[int],
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "predict",
    precision: str = "auto",
) -> Iterator[tuple[Case, np.ndarray]]:
    """Yield ``(case, predict_case(model, case, ...))`` for each case, with a tqdm progress bar.

    A generator: cases are predicted one at a time as you iterate, so predictions of a large test set
    need not all be held in memory.
    """
    from tqdm.auto import tqdm

    total = len(cases) if hasattr(cases, "__len__") else None
    if device is not None:
        model.to(resolve_device(device))
        device = None  # moved once; predict_case then follows the model
    for case in tqdm(cases, desc=desc, unit="case", total=total, disable=not progress):
        yield case, predict_case(model, case, image_size, batch_size=batch_size, device=device,
                                  precision=precision)
