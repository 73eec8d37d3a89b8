"""Tests of the shift benchmark registry (sikd_utils.data.shifts).

Small images (48-64 px) and 3 cases keep the file fast; every check would fail for a family that
ignores its severity, touches the label when it should not, or draws other cases than the clean set.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from sikd_utils.data import TASKS
from sikd_utils.data import shifts
from sikd_utils.data.shifts import SEVERITIES, ShiftFamily, benchmark_families, shift_cases, shift_families
from sikd_utils.data.synthetic import make_cases, task_module

N, SIZE = 3, 64
TASK_KEYS = list(TASKS)
FAMILIES = [(t, f) for t in TASK_KEYS for f in shift_families(t)]


@lru_cache(maxsize=None)
def cases(task, family, severity, n=N, size=SIZE, seed=0):
    return tuple(shift_cases(task, family, severity, n, size, seed=seed))


def rms(a, b):
    return float(np.sqrt(np.mean((a.image - b.image) ** 2)))


@pytest.mark.parametrize("task", TASK_KEYS)
def test_registry_size_kinds_and_descriptions(task):
    families = shift_families(task)
    appearance = [f for n, f in families.items() if f.kind == "appearance" and n != "target"]
    shape = [f for f in families.values() if f.kind == "shape"]
    assert len(appearance) >= 8 and len(shape) >= 2
    for name, family in families.items():
        assert isinstance(family, ShiftFamily) and family.name == name
        assert family.kind in ("appearance", "shape")
        assert isinstance(family.description, str) and len(family.description) > 15
        assert family.parameters or family.corruption is not None, name


@pytest.mark.parametrize("task", TASK_KEYS)
def test_family_parameters_exist_and_target_is_the_device_families(task):
    module = task_module(task)
    families = shift_families(task)
    for family in families.values():
        table = module.SHAPE if family.kind == "shape" else module.APPEARANCE
        assert set(family.parameters) <= set(table), family.name
        for p in family.parameters:
            assert table[p].shift != 0, f"{family.name}: {p} has no shift"
    # the target mixture moves exactly the appearance parameters the synthetic suite shifts
    shifted = {p for p, spec in module.APPEARANCE.items() if spec.shift != 0}
    assert set(families["target"].parameters) == shifted
    # and the shape families together move what the shape_shift domain moves
    shape_params = {p for f in families.values() if f.kind == "shape" for p in f.parameters}
    assert shape_params == {p for p, spec in module.SHAPE.items() if spec.shift != 0}


@pytest.mark.parametrize("task", TASK_KEYS)
def test_severity_zero_is_the_clean_set_whatever_the_family(task):
    clean = cases(task, "clean", 0)
    for family in list(shift_families(task))[:3] + ["target"]:
        for a, b in zip(clean, cases(task, family, 0)):
            assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert all(c.meta["family"] == "clean" and c.meta["severity"] == 0 for c in clean)
    # the clean set is the source distribution, and never a training case (indices 0, 1, 2 ...)
    train = make_cases(task, "source", N, SIZE)
    assert all(not np.array_equal(a.label, b.label) for a, b in zip(clean, train))
    assert clean[0].meta["index"] == shifts.TEST_INDEX_OFFSET


@pytest.mark.parametrize("task,family", FAMILIES)
def test_effect_grows_with_severity_and_labels_follow_the_kind(task, family):
    kind = shift_families(task)[family].kind
    clean = cases(task, "clean", 0)
    distances = []
    for severity in SEVERITIES[1:]:
        shifted = cases(task, family, severity)
        assert [c.case_id.split("-")[-1] for c in shifted] == [c.case_id.split("-")[-1] for c in clean]
        assert all(c.domain == family and c.meta["severity"] == severity for c in shifted)
        if kind == "appearance":
            assert all(np.array_equal(a.label, b.label) for a, b in zip(shifted, clean)), "appearance touched labels"
            distances.append(np.mean([rms(a, b) for a, b in zip(shifted, clean)]))
        else:
            distances.append(np.mean([np.mean(a.label != b.label) for a, b in zip(shifted, clean)]))
        for c in shifted:  # normalised after the shift, as real data is
            assert c.image.dtype == np.float32 and c.image.min() >= 0 and c.image.max() <= 1
    if kind == "appearance":
        assert all(b > a for a, b in zip(distances, distances[1:])), f"{family}: {np.round(distances, 4)}"
        assert distances[0] > 1e-4, f"{family} does nothing at severity 1"
    else:  # shape families change the label, more at the top severity than at the first
        assert distances[-1] > 0.005 and distances[-1] > distances[0], f"{family}: {np.round(distances, 4)}"


@pytest.mark.parametrize("task", TASK_KEYS)
def test_target_family_moves_every_shifted_parameter_by_half_a_unit_per_level(task):
    # level 2 = severity 1 of make_cases' target domain, drawn from the clean cases' own random numbers
    table = task_module(task).APPEARANCE
    for clean, target in zip(cases(task, "clean", 0), cases(task, "target", 2)):
        assert clean.meta["anatomy"] == target.meta["anatomy"]
        for name, spec in table.items():
            before, after = clean.meta["appearance"][name], target.meta["appearance"][name]
            expected = before * np.exp(spec.shift) if spec.log else before + spec.shift
            expected = min(max(expected, spec.lo), spec.hi)
            assert after == pytest.approx(expected, rel=1e-4, abs=1e-5), name


def test_determinism_and_compounds():
    a = shift_cases("fundus", "tone_curve+jpeg", 3, 2, 48)
    b = shift_cases("fundus", "tone_curve+jpeg", 3, 2, 48)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    single = shift_cases("fundus", "tone_curve", 3, 2, 48)
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, single))
    other_seed = shift_cases("fundus", "tone_curve+jpeg", 3, 2, 48, seed=1)
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, other_seed))
    everything = shift_cases("cardiac", "all", 2, 1, 48)[0]
    clean = shift_cases("cardiac", "clean", 0, 1, 48)[0]
    assert np.array_equal(everything.label, clean.label) and rms(everything, clean) > 0.05


@pytest.mark.parametrize("task", TASK_KEYS)
def test_benchmark_families_are_valid(task):
    names = benchmark_families(task)
    assert names[-1] == "all" and len(names) >= len(shift_families(task)) + 3
    for name in names:
        shifts.parse_family(task, name)  # raises on an invalid name


@pytest.mark.parametrize("call,match", [
    (lambda: shift_cases("liver", "gibbs", 1, 1, 48), "unknown task 'liver'"),
    (lambda: shift_cases("cardiac", "jpeg", 1, 1, 48), r"unknown shift family 'jpeg'.*gibbs"),
    (lambda: shift_cases("cardiac", "gibbs", 6, 1, 48), "severity must be an integer between 0 and 5, got 6"),
    (lambda: shift_cases("cardiac", "gibbs", -1, 1, 48), "between 0 and 5"),
    (lambda: shift_cases("cardiac", "gibbs", 1.5, 1, 48), "got 1.5"),
    (lambda: shift_cases("cardiac", "gibbs", True, 1, 48), "got True"),
    (lambda: shift_cases("cardiac", "clean", 2, 1, 48), "severity 0 only"),
    (lambda: shift_cases("cardiac", "gibbs+hypertrophy", 1, 1, 48), "'hypertrophy' is a shape family"),
    (lambda: shift_cases("cardiac", "gibbs+gibbs", 1, 1, 48), "twice"),
    (lambda: shift_cases("cardiac", "", 1, 1, 48), "non-empty"),
    (lambda: shift_cases("cardiac", "gibbs", 1, -2, 48), "n_cases"),
    (lambda: shift_cases("cardiac", "gibbs", 1, 1, 16), "image_size"),
])
def test_bad_input_names_the_valid_choices(call, match):
    with pytest.raises(ValueError, match=match):
        call()
