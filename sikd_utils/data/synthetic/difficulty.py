"""The suite's difficulty levels: what makes each real task hard, added on top of today's phantoms.

Level 0 is the suite as it always was (bit for bit). Levels 1..4 switch on, at a strength of level / 4,
the task's *hardenings*: each one models a reason the real task is hard (low contrast between adjacent
classes, confounders outside the label, small or thin structures, partial volume, boundaries the
image does not show, wider anatomy). Every hardening is a property of the patient or of the physics,
shared by every domain: a harder source is rendered by the target scanner with the same extra anatomy.

The extra randomness comes from a stream of its own, so level 0 consumes exactly the random numbers it
always did, and a level-k case is the level-0 patient with the hardenings added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from .fields import _smooth_field
from .params import _F

__all__ = ["LEVELS", "Hardening", "Hard", "check_difficulty", "strength"]

LEVELS: tuple[int, ...] = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Hardening:
    """One reason a real task is hard: what the phantom shows at the top level, and why it is realistic."""

    name: str
    change: str
    reason: str


@dataclass(frozen=True)
class Hard:
    """What a task generator needs to harden a case: the strength in [0, 1] and its own random stream."""

    t: float
    rng: np.random.Generator


def check_difficulty(value) -> int:
    """The level as an int; a ValueError naming the value and the allowed levels otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in LEVELS:
        raise ValueError(f"difficulty must be one of the levels {list(LEVELS)} (0 = the original suite, "
                         f"{LEVELS[-1]} = hardest), got {value!r}")
    return int(value)


def strength(level: int) -> float:
    """Fraction of every hardening's full strength at ``level`` (0 at level 0, 1 at the top level)."""
    return check_difficulty(level) / LEVELS[-1]


def through_plane_mix(volume: np.ndarray, weight: float) -> np.ndarray:
    """Slices thicker than their spacing: each slice takes ``weight`` of its two neighbours' signal.

    A (H, W, D) volume; the first and last slices borrow from their one neighbour. This is the
    partial-volume effect of thick 2D slices: an organ's edge in one slice is smeared by the next.
    """
    if weight <= 0 or volume.shape[-1] < 2:
        return volume
    padded = np.concatenate([volume[..., :1], volume, volume[..., -1:]], axis=-1)
    neighbours = 0.5 * (padded[..., :-2] + padded[..., 2:])
    return ((1 - weight) * volume + weight * neighbours).astype(_F)


def blob_mask(rng: np.random.Generator, shape: tuple[int, int], cells: float, fraction: float) -> np.ndarray:
    """A random blotchy 2D mask covering about ``fraction`` of the image (thresholded smooth noise).

    The same draws at every image size (:func:`_smooth_field`), so the blotches sit where they sat.
    """
    field = _smooth_field(rng, shape, cells)
    if fraction <= 0:
        return np.zeros(shape, bool)
    return field > _F(_normal_quantile(1 - min(fraction, 1.0)))


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))
