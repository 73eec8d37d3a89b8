"""Turning a task's generator into Cases: random streams per case, severities, normalisation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from types import ModuleType

import numpy as np

from ..case import Case
from ..preprocess import normalize_percentile
from ..tasks import get_task
from . import abdomen, breast_us, cardiac, fundus, polyp
from .difficulty import LEVELS, Hard, check_difficulty, strength
from .params import _F, _draw

__all__ = ["DOMAINS", "DIFFICULTY_LEVELS", "make_cases", "describe", "describe_difficulty", "difficulty_rows",
           "render_cases", "task_module"]

DIFFICULTY_LEVELS = LEVELS

DOMAINS: tuple[str, ...] = ("source", "target", "shape_shift")

_MODULES: dict[str, ModuleType] = {
    "cardiac": cardiac, "abdomen": abdomen, "fundus": fundus, "polyp": polyp, "breast_us": breast_us,
}
_TASK_CODE = {"cardiac": 11, "abdomen": 12, "fundus": 13, "polyp": 14, "breast_us": 15}
_DOMAIN_CODE = {"source": 0, "target": 1, "shape_shift": 2}
_ANATOMY, _APPEARANCE, _NOISE = 0, 1, 2
_HARDENING = 3  # the difficulty levels' own stream: levels above 0 never move the three above

# (image in [0, 1], label, spacing, rng) -> image; applied between two percentile normalisations
ImageTransform = Callable[[np.ndarray, np.ndarray, tuple, np.random.Generator], np.ndarray]


def task_module(task: str):
    """The module holding ``task``'s generator and its ``SHAPE`` / ``APPEARANCE`` parameter tables."""
    return _MODULES[get_task(task).key]


def describe(task: str, domain: str = "source") -> str:
    """One line saying what ``make_cases(task, domain)`` simulates (for plot titles and tables)."""
    spec = get_task(task)
    _check_domain(spec, domain)
    return _MODULES[spec.key].DESCRIPTIONS[domain]


def describe_difficulty(task: str, level: int) -> str:
    """One line saying what ``level`` adds to ``task``'s phantoms (for plot titles and tables)."""
    spec = get_task(task)
    level = check_difficulty(level)
    if level == 0:
        return "level 0: the original suite"
    names = ", ".join(h.name for h in _MODULES[spec.key].DIFFICULTY)
    return f"level {level}: {names} at {round(100 * strength(level))} % of full strength"


def difficulty_rows(task: str) -> list[dict]:
    """``task``'s hardenings as rows (task, hardening, what the image shows at the top level, why)."""
    spec = get_task(task)
    return [{"task": spec.key, "hardening": h.name, "at the top level": h.change, "why the real task is hard": h.reason}
            for h in _MODULES[spec.key].DIFFICULTY]


def _check_domain(spec, domain):
    valid = tuple(d for d in spec.synthetic_domains if d in _DOMAIN_CODE)
    if domain not in valid:
        raise ValueError(f"unknown synthetic domain {domain!r} for task {spec.key!r}; choose one of {list(valid)}")


def _check_int(name, value, minimum, maximum=None):
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def _streams(seed: int, task: str, domain: str, index: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence([seed, _TASK_CODE[task], _DOMAIN_CODE[domain], index, s]))
            for s in (_ANATOMY, _APPEARANCE, _NOISE)]


def _hard(seed: int, task: str, domain: str, index: int, difficulty: int) -> Hard | None:
    """The hardening of a case at ``difficulty`` (None at level 0: the generators run as they always did)."""
    if difficulty == 0:
        return None
    seq = np.random.SeedSequence([seed, _TASK_CODE[task], _DOMAIN_CODE[domain], index, _HARDENING])
    return Hard(strength(difficulty), np.random.default_rng(seq))


def _freeze(severity):
    if isinstance(severity, Mapping):
        items = tuple(sorted((k, float(v)) for k, v in severity.items() if float(v) != 0.0))
        return items or 0.0
    return float(severity)


def _thaw(key):
    return dict(key) if isinstance(key, tuple) else key


@lru_cache(maxsize=48)
def _scene(task: str, domain: str, seed: int, index: int, size: int, shape_key, difficulty: int = 0) -> dict:
    """A task's scene (anatomy plus the scanner's random draws), kept for reuse.

    Shift families that only change the scanner render the same scene again and again; caching it
    makes the benchmark several times faster with bit-identical results.
    """
    rng, _, rng_noise = _streams(seed, task, domain, index)
    hard = _hard(seed, task, domain, index, difficulty)
    if hard is None:
        return _MODULES[task].anatomy(rng, rng_noise, size, _thaw(shape_key))
    return _MODULES[task].anatomy(rng, rng_noise, size, _thaw(shape_key), hard=hard)


def _generate(task: str, domain: str, seed: int, index: int, size: int, shape_key, appearance_key,
              difficulty: int = 0):
    module = _MODULES[task]
    if not hasattr(module, "anatomy"):
        hard = _hard(seed, task, domain, index, difficulty)
        extra = {} if hard is None else {"hard": hard}
        return module.generate(*_streams(seed, task, domain, index), size, _thaw(shape_key), _thaw(appearance_key),
                               **extra)
    rng_app = _streams(seed, task, domain, index)[_APPEARANCE]
    appearance = _draw(module.APPEARANCE, rng_app, _thaw(appearance_key))
    scene = _scene(task, domain, seed, index, size, shape_key, difficulty)
    image, label, spacing, anatomy, appearance = module.acquire(scene, appearance)
    return image, label.copy(), spacing, anatomy, appearance


@lru_cache(maxsize=48)
def _clean(task: str, domain: str, seed: int, index: int, size: int, difficulty: int = 0):
    """A case with no shift at all, normalised (corruption families start from it)."""
    image, label, spacing, anatomy, appearance = _generate(task, domain, seed, index, size, 0.0, 0.0, difficulty)
    return normalize_percentile(np.asarray(image, dtype=_F)), label, spacing, anatomy, appearance


def render_cases(
    task: str,
    domain: str,
    indices: Sequence[int],
    image_size: int,
    seed: int,
    shape_severity: float | Mapping[str, float] = 0.0,
    appearance_severity: float | Mapping[str, float] = 0.0,
    transform: ImageTransform | None = None,
    name: str | None = None,
    meta: Mapping | None = None,
    difficulty: int = 0,
) -> list[Case]:
    """Render cases ``indices`` of (task, domain, seed) with the given severities.

    ``domain`` picks the random streams (so the anatomy); the severities move the task's ``SHAPE`` and
    ``APPEARANCE`` parameters (one number for all, or name -> severity). ``transform`` is an extra image
    change applied after normalisation and followed by a second normalisation, as real data would be
    normalised after a device changed it. ``name`` replaces ``domain`` in ``Case.domain`` and the case id.
    ``difficulty`` is the suite's level (``sikd_utils.data.synthetic.difficulty``), 0 the original phantoms.
    """
    spec = get_task(task)
    difficulty = check_difficulty(difficulty)
    label_name = name or domain
    cases = []
    for i in indices:
        shape_key, appearance_key = _freeze(shape_severity), _freeze(appearance_severity)
        if shape_key == 0.0 and appearance_key == 0.0:
            image, label, spacing, anatomy, appearance = _clean(spec.key, domain, seed, int(i), image_size, difficulty)
            image, label = image.copy(), label.copy()
        else:
            image, label, spacing, anatomy, appearance = _generate(spec.key, domain, seed, int(i), image_size,
                                                                   shape_key, appearance_key, difficulty)
            image = normalize_percentile(np.asarray(image, dtype=_F))
        if transform is not None:
            rng_shift = np.random.default_rng(np.random.SeedSequence([seed, _TASK_CODE[spec.key], 99, int(i)]))
            image = normalize_percentile(np.asarray(transform(image, label, spacing, rng_shift), dtype=_F))
        record = {
            "seed": seed,
            "index": int(i),
            "task": spec.key,
            "difficulty": difficulty,
            "anatomy": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in anatomy.items()},
            "appearance": {k: round(v, 6) for k, v in appearance.items()},
        }
        record.update(meta or {})
        case = Case(image=image, label=label, spacing=spacing, case_id=f"{spec.key}-{label_name}-{int(i):03d}",
                    domain=label_name, dataset=f"synthetic-{spec.key}", meta=record)
        cases.append(case.check_classes(spec.num_classes))
    return cases


def make_cases(
    task: str,
    domain: str = "source",
    n_cases: int = 20,
    image_size: int = 128,
    seed: int = 0,
    severity: float = 1.0,
    difficulty: int = 0,
) -> list[Case]:
    """Generate ``n_cases`` synthetic cases of ``task`` in ``domain`` (see the package docstring).

    Args:
        task: one of ``sikd_utils.data.TASKS`` (cardiac, abdomen, fundus, polyp, breast_us).
        domain: ``"source"``, ``"target"`` (appearance shift) or ``"shape_shift"`` (anatomy shift).
        n_cases: number of cases; case ``i`` does not depend on ``n_cases``.
        image_size: in-plane size H = W in pixels (at least 32); 3D tasks get D = 6..12 slices.
        seed: non-negative integer; with task, domain and case index it seeds every draw.
        severity: shift strength (at least 0) for ``target`` and ``shape_shift``: 0 none, 1 default,
            2 severe; ignored by ``source``.
        difficulty: level of the suite, 0 (the original phantoms) to 4: what makes the real task hard
            (see :func:`describe_difficulty`), the same at every domain and severity.

    Returns:
        A list of ``Case`` objects with images normalised to [0, 1] by ``normalize_percentile``,
        ``domain`` set, ``dataset = "synthetic-<task>"`` and ``case_id = "<task>-<domain>-<i:03d>"``.
    """
    spec = get_task(task)
    difficulty = check_difficulty(difficulty)
    _check_domain(spec, domain)
    n_cases = _check_int("n_cases", n_cases, 0)
    image_size = _check_int("image_size", image_size, 32)
    seed = _check_int("seed", seed, 0)
    try:
        severity = float(severity)
    except (TypeError, ValueError):
        raise ValueError(f"severity must be a number >= 0, got {severity!r}") from None
    if not math.isfinite(severity) or severity < 0:
        raise ValueError(f"severity must be a finite number >= 0, got {severity!r}")
    return render_cases(spec.key, domain, range(n_cases), image_size, seed,
                        shape_severity=severity if domain == "shape_shift" else 0.0,
                        appearance_severity=severity if domain == "target" else 0.0,
                        meta={"severity": severity}, difficulty=difficulty)
