"""Per-case, per-class Dice and HD95, and summaries with confidence intervals.

Conventions (identical for every method, so comparisons stay fair):

* Scores are computed per *case* (a whole 3D volume, or one 2D image) and per foreground class.
* **Dice** = ``2|P∩G| / (|P| + |G|)``. If the class is absent from both prediction and ground truth the
  Dice is undefined: it is stored as NaN and left out of every mean (pandas skips NaN). If only one
  of them is empty the Dice is 0.
* **HD95** follows medpy's ``hd95``, which the official SIKD evaluation uses: the 95th percentile of
  the *pooled* surface distances of both directions (prediction→truth and truth→prediction),
  not the maximum of the two directed 95th percentiles that MONAI's ``compute_hausdorff_distance``
  returns. Surfaces are the voxels removed by one binary erosion (face connectivity); distances are
  Euclidean. ``hd95_mm`` uses the case's spacing; ``hd95_vox`` uses unit spacing, for parity with the
  official script, which ignores spacing. HD95 is undefined (NaN) whenever the prediction or the
  truth is empty; ``summarize`` counts those cases instead of hiding them.
"""

from __future__ import annotations

import functools
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

__all__ = ["dice", "hd95", "score_case", "score_cases", "summarize", "mean_ci", "ScoreTable"]


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty (see module docs)."""
    pred, truth = _as_numpy(pred).astype(bool), _as_numpy(truth).astype(bool)
    if pred.shape != truth.shape:
        raise ValueError(f"dice: prediction shape {pred.shape} differs from ground truth shape {truth.shape}")
    total = pred.sum() + truth.sum()
    if total == 0:
        return float("nan")
    return float(2.0 * np.logical_and(pred, truth).sum() / total)


def _surface_distances(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Pooled surface distances of both directions, via MONAI's edge/distance utilities."""
    import warnings

    import torch
    from monai.metrics.utils import get_edge_surface_distance

    with warnings.catch_warnings():  # MONAI 1.5+ warns about an argument it passes to itself
        warnings.simplefilter("ignore", FutureWarning)
        _, distances, _ = get_edge_surface_distance(
            torch.as_tensor(pred), torch.as_tensor(truth), distance_metric="euclidean",
            spacing=list(spacing), symmetric=True,
        )
    return np.concatenate([_as_numpy(d).ravel() for d in distances])


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """medpy-style HD95 of two boolean masks (pooled distances); NaN if either mask is empty."""
    pred, truth = _as_numpy(pred).astype(bool), _as_numpy(truth).astype(bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {truth.shape}")
    spacing = [1.0] * pred.ndim if spacing is None else [float(s) for s in spacing]
    if len(spacing) != pred.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"hd95: spacing {spacing} must give one positive value (mm) per axis of shape {pred.shape}")
    if not pred.any() or not truth.any():
        return float("nan")
    return float(np.percentile(_surface_distances(pred, truth, spacing), 95))


def score_case(
    pred, label, num_classes: int, spacing: Sequence[float] | None = None, class_names: Sequence[str] | None = None,
    distances: bool = True,
) -> list[dict]:
    """Score one case: one row per foreground class with ``class``, ``dice``, ``hd95_mm``, ``hd95_vox``.

    ``pred`` and ``label`` are integer maps of the same spatial shape (2D or 3D, numpy or torch).
    ``spacing`` is millimetres per axis (default 1 mm). Rows also carry ``class_index`` and
    ``empty`` ("none", "pred", "truth" or "both") so undefined values can be traced.
    ``distances=False`` skips HD95 (NaN), the slow part, where only Dice is reported.
    """
    from .checks import check_int

    num_classes = check_int("num_classes", num_classes, 2)
    pred, label = _as_numpy(pred), _as_numpy(label)
    if pred.shape != label.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from label shape {label.shape}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"cases must be 2D or 3D label maps, got shape {pred.shape}")
    for name, arr in (("prediction", pred), ("label", label)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} values must lie in [0, {num_classes}), found [{arr.min()}, {arr.max()}]")
    spacing = [1.0] * pred.ndim if spacing is None else [float(s) for s in spacing]
    if len(spacing) != pred.ndim or any(not (np.isfinite(s) and s > 0) for s in spacing):
        raise ValueError(f"spacing {spacing} must give one positive value per axis of shape {pred.shape}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} entries, expected {num_classes}")

    rows = []
    for k in range(1, num_classes):
        p, t = pred == k, label == k
        empty = {(False, False): "none", (True, False): "pred", (False, True): "truth", (True, True): "both"}[
            (not p.any(), not t.any())
        ]
        rows.append(
            {
                "class": class_names[k] if class_names is not None else str(k),
                "class_index": k,
                "dice": dice(p, t),
                "hd95_mm": hd95(p, t, spacing) if distances else float("nan"),
                "hd95_vox": hd95(p, t, None) if distances else float("nan"),
                "empty": empty,
            }
        )
    return rows


class ScoreTable(NamedTuple):
    per_case: pd.DataFrame  # one row per (case, class)
    summary: pd.DataFrame  # one row per class plus "overall"


def score_cases(
    items: Iterable[tuple], num_classes: int, class_names: Sequence[str] | None = None, distances: bool = True
) -> ScoreTable:
    """Score many cases. ``items`` yields ``(case_id, pred, label, spacing)``; returns a ScoreTable."""
    rows = []
    for case_id, pred, label, spacing in items:
        for row in score_case(pred, label, num_classes, spacing, class_names, distances=distances):
            rows.append({"case": case_id, **row})
    columns = ["case", "class", "class_index", "dice", "hd95_mm", "hd95_vox", "empty"]
    per_case = pd.DataFrame(rows, columns=columns)
    return ScoreTable(per_case, summarize(per_case))


def summarize(per_case: pd.DataFrame) -> pd.DataFrame:
    """Per-class means (NaN skipped) with counts of undefined values, plus an ``overall`` row.

    ``overall`` averages the per-class means, so every class weighs the same whatever its size.
    """
    if per_case.empty:
        raise ValueError("no scores to summarise")
    grouped = per_case.groupby("class", sort=False)
    summary = pd.DataFrame(
        {
            "dice": grouped["dice"].mean(),
            "dice_std": grouped["dice"].std(),
            "hd95_mm": grouped["hd95_mm"].mean(),
            "hd95_vox": grouped["hd95_vox"].mean(),
            "n_cases": grouped.size(),
            "n_dice_undefined": grouped["dice"].apply(lambda s: int(s.isna().sum())),
            "n_hd95_undefined": grouped["hd95_mm"].apply(lambda s: int(s.isna().sum())),
        }
    )
    overall = summary[["dice", "hd95_mm", "hd95_vox"]].mean()
    summary.loc["overall"] = {
        **overall.to_dict(),
        "dice_std": float("nan"),
        "n_cases": int(per_case["case"].nunique()),
        "n_dice_undefined": int(summary["n_dice_undefined"].sum()),
        "n_hd95_undefined": int(summary["n_hd95_undefined"].sum()),
    }
    summary.index.name = "class"
    return summary


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (NaN half-width for one value)."""
    from .checks import check_float

    check_float("confidence", confidence, 0.0, 1.0, strict_minimum=True)
    if confidence == 1.0:
        raise ValueError("confidence must lie in (0, 1), got 1.0")
    values = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan")
    sem = values.std(ddof=1) / np.sqrt(values.size)
    return mean, float(sem * _t_quantile(0.5 + confidence / 2, values.size - 1))


@functools.lru_cache(maxsize=None)
def _t_quantile(q: float, dof: int) -> float:
    """Student-t quantile (scipy's ``t.ppf`` costs ~1 ms a call; a results page asks for a few values thousands of times)."""
    from scipy import stats

    return float(stats.t.ppf(q, dof))
