"""A tiny stand-in for ``sikd_utils.data.shifts`` (same contract), so the evidence pipeline is tested
fast and independently of the real registry's families."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ShiftFamily:
    kind: str
    description: str


FAMILIES = {"gamma": ShiftFamily("appearance", "a different contrast curve"),
            "squash": ShiftFamily("shape", "flatter anatomy")}


def shift_families(task):
    from sikd_utils.data.tasks import get_task

    get_task(task)
    return dict(FAMILIES)


def shift_cases(task, family, severity, n_cases, image_size, seed=0, difficulty=0):
    from sikd_utils.data.case import Case
    from sikd_utils.data.synthetic import make_cases

    if family == "clean":
        return make_cases(task, "source", n_cases, image_size, seed=seed, difficulty=difficulty)
    if family == "target":
        return make_cases(task, "target", n_cases, image_size, seed=seed, severity=0.4 * severity, difficulty=difficulty)
    if family == "squash":
        return make_cases(task, "shape_shift", n_cases, image_size, seed=seed, severity=0.3 * severity, difficulty=difficulty)
    if family == "gamma":
        return [Case(np.clip(c.image, 0, 1) ** (1 + 0.3 * severity), c.label, c.spacing, c.case_id, "gamma")
                for c in make_cases(task, "source", n_cases, image_size, seed=seed, difficulty=difficulty)]
    raise ValueError(f"unknown family {family!r}; choose one of {['clean', 'target', *FAMILIES]}")


def install(monkeypatch) -> types.ModuleType:
    """Make ``sikd_utils.data.shifts`` this module for the duration of a test."""
    import sikd_utils.data

    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "sikd_utils.data.shifts", module)
    monkeypatch.setattr(sikd_utils.data, "shifts", module, raising=False)
    return module
