"""Per-volume intensity normalisation, applied identically to training and test data.

The official SIKD code clips each training volume to its 2nd–98th intensity percentile and rescales
to [0, 1], but its test script forgets to (a bug we do not reproduce). Every loader in this package,
synthetic or real, calls these functions itself so the two can never differ.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_percentile", "window_intensity"]


def normalize_percentile(image: np.ndarray, lower: float = 2.0, upper: float = 98.0) -> np.ndarray:
    """Clip ``image`` to its [lower, upper] percentiles and rescale to [0, 1] (float32).

    Percentiles are taken over the whole image or volume, all channels together, so a colour-balance
    shift between channels survives (it is part of the domain shift, not something to normalise away).
    A constant image becomes all zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise ValueError("cannot normalise an image holding NaN or infinite values")
    lo, hi = np.percentile(image, [lower, upper])
    if hi <= lo:
        return np.zeros_like(image)
    return ((np.clip(image, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def window_intensity(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to a fixed window (e.g. CT Hounsfield units [-125, 275]) and rescale to [0, 1] (float32)."""
    if not high > low:
        raise ValueError(f"window must have high > low, got [{low}, {high}]")
    image = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise ValueError("cannot window an image holding NaN or infinite values")
    return ((np.clip(image, low, high) - low) / (high - low)).astype(np.float32)
