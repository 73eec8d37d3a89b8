"""Whole-case evaluation: predict every case with a model, then score it per case and class."""

from __future__ import annotations

from typing import Sequence

from .data.case import Case
from .data.tasks import TaskSpec, get_task
from .metrics import ScoreTable, score_cases

__all__ = ["evaluate_cases"]


def evaluate_cases(
    model,
    cases: Sequence[Case],
    task: str | TaskSpec,
    image_size: int,
    batch_size: int = 16,
    device=None,
    progress: bool = True,
    predictions: dict | None = None,
    distances: bool = True,
    precision: str = "auto",
) -> ScoreTable:
    """Predict each case (slice by slice, resized as in training) and score it in 3D/2D.

    Returns a :class:`~sikd_utils.metrics.ScoreTable` (per-case rows and a per-class summary).
    Pass a dict as ``predictions`` to also collect ``case_id -> predicted label map`` (for figures).
    ``distances=False`` skips HD95 (Dice only: much faster on large shift benchmarks).
    ``precision`` as in :func:`~sikd_utils.inference.predict_case`.
    """
    from .inference import predict_cases

    spec = get_task(task)
    if not cases:
        raise ValueError("no cases to evaluate")

    def scored():
        for case, pred in predict_cases(model, cases, image_size, batch_size=batch_size, device=device,
                                        progress=progress, precision=precision):
            case.check_classes(spec.num_classes)
            if predictions is not None:
                predictions[case.case_id] = pred
            yield case.case_id, pred, case.label, case.spacing

    return score_cases(scored(), spec.num_classes, spec.class_names, distances=distances)
