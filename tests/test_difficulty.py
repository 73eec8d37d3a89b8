"""The synthetic suite's difficulty levels: level 0 is the original suite bit for bit, every level is
deterministic, a bad level is a clear error, and a measurable hardness grows with the level.

``tests/data/`` holds digests and run keys computed by the code before the setting existed.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from sikd_utils.configuration import ExperimentConfig, preset_config, synthetic_splits
from sikd_utils.data import TASKS
from sikd_utils.data.identity import digest_arrays
from sikd_utils.data.shifts import shift_cases
from sikd_utils.data.synthetic import (DIFFICULTY_LEVELS, describe_difficulty, difficulty_rows, make_cases,
                                       task_module)
from sikd_utils.reproduce import ReproduceSettings, _data_tag

DATA = Path(__file__).resolve().parent / "data"
TASK_KEYS = list(TASKS)


def _digest(case) -> str:
    return digest_arrays([case.image, case.label], repr(tuple(case.spacing)))


# --------------------------------------------------------------------------- level 0 = the original suite
@pytest.mark.parametrize("task", TASK_KEYS)
def test_level_zero_is_the_original_suite_bit_for_bit(task):
    recorded = json.loads((DATA / "synthetic_level0_digests.json").read_text())
    checked = 0
    for key, digest in recorded.items():
        name, domain, severity, case_id = key.split("/")
        if name != task:
            continue
        index = int(case_id.rsplit("-", 1)[1])
        if domain.startswith("shift:"):  # the shift benchmark (clean, target, every appearance family)
            case = shift_cases(task, domain[len("shift:"):], int(severity), 2, 64, seed=3, difficulty=0)[index - 10_000]
        else:
            case = make_cases(task, domain, 3, 64, seed=7, severity=float(severity), difficulty=0)[index]
        assert case.case_id == case_id
        assert _digest(case) == digest, key
        checked += 1
    assert checked == 24


def test_difficulty_zero_leaves_run_keys_and_data_tags_as_they_were():
    recorded = json.loads((DATA / "difficulty0_run_keys.json").read_text())
    committed = json.loads((Path(__file__).resolve().parents[1] / "book" / "results" / "provenance.json").read_text())
    for task in TASK_KEYS:
        config = preset_config("gpu", task)
        assert config.difficulty == 0
        assert config.run_key(_data_tag(config)) == recorded["gpu_preset_run_keys"][task]
        assert ReproduceSettings(tasks=(task,)).config(task).run_key(_data_tag(config)) == \
            committed["tasks"][task]["run_key"]
        small = ExperimentConfig(task=task, image_size=32, n_train=2, n_val=1, n_test=1, n_target=1, out_dir=None,
                                 difficulty=0)
        tag = synthetic_splits(small).tag
        assert tag == recorded["small_split_tags"][task]
        assert small.run_key(tag) == recorded["small_run_keys"][task]


def test_a_level_changes_run_key_and_data_identity():
    base = ExperimentConfig(task="polyp", image_size=32, n_train=2, n_val=1, n_test=1, n_target=1, out_dir=None)
    hard = dataclasses.replace(base, difficulty=2)
    assert hard.run_key("x") != base.run_key("x")
    splits = synthetic_splits(hard)
    assert splits.identity["difficulty"] == 2 and "difficulty" not in synthetic_splits(base).identity
    assert splits.tag != synthetic_splits(base).tag
    assert all(c.meta["difficulty"] == 2 for cases in splits.tests.values() for c in cases)
    assert ReproduceSettings(tasks=("polyp",), difficulty=3).config("polyp").difficulty == 3


# --------------------------------------------------------------------------- every level
@pytest.mark.parametrize("task", TASK_KEYS)
def test_each_level_is_deterministic_and_its_own(task):
    digests = []
    for level in DIFFICULTY_LEVELS:
        first = make_cases(task, "source", 2, 48, seed=4, difficulty=level)
        again = make_cases(task, "source", 2, 48, seed=4, difficulty=level)
        assert [_digest(c) for c in first] == [_digest(c) for c in again]
        assert all(c.meta["difficulty"] == level for c in first)
        digests.append(tuple(_digest(c) for c in first))
    assert len(set(digests)) == len(DIFFICULTY_LEVELS)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_a_harder_case_keeps_its_shift_structure(task):
    # target severities share the (hardened) anatomy; the benchmark's clean set is the hardened source
    a, b = (make_cases(task, "target", 2, 48, seed=1, severity=s, difficulty=3) for s in (0.0, 2.0))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.label, y.label)
        assert not np.array_equal(x.image, y.image)
    clean = shift_cases(task, "clean", 0, 1, 48, seed=1, difficulty=3)[0]
    assert clean.meta["difficulty"] == 3
    assert _digest(clean) != _digest(shift_cases(task, "clean", 0, 1, 48, seed=1)[0])


@pytest.mark.parametrize("bad", [5, -1, 1.5, True, "2", None])
def test_bad_difficulty_is_a_clear_error(bad):
    pattern = r"difficulty must be one of the levels \[0, 1, 2, 3, 4\].*got"
    with pytest.raises(ValueError, match=pattern):
        make_cases("polyp", n_cases=1, image_size=32, difficulty=bad)
    with pytest.raises(ValueError, match=pattern):
        shift_cases("polyp", "clean", 0, 1, 32, difficulty=bad)
    with pytest.raises(ValueError, match=pattern):
        ExperimentConfig(difficulty=bad)
    with pytest.raises(ValueError, match=pattern):
        ReproduceSettings(difficulty=bad)


@pytest.mark.parametrize("task", TASK_KEYS)
def test_every_hardening_says_what_and_why(task):
    table = task_module(task).DIFFICULTY
    assert len(table) >= 4
    rows = difficulty_rows(task)
    assert [r["hardening"] for r in rows] == [h.name for h in table]
    assert all(len(r["at the top level"]) > 20 and len(r["why the real task is hard"]) > 40 for r in rows)
    assert describe_difficulty(task, 0) == "level 0: the original suite"
    assert "100 %" in describe_difficulty(task, 4) and table[0].name in describe_difficulty(task, 2)


# --------------------------------------------------------------------------- hardness grows with the level
def class_overlap(case, bins: int = 32) -> float:
    """How alike a class and its surroundings look: histogram overlap of their (lightly smoothed) intensities.

    For each foreground class, the pixels of the class against those in a band around it (as wide as
    0.6 of the class's radius, in-plane): 0 = told apart by intensity alone, 1 = indistinguishable. The
    channel that separates them best counts; the mean over classes is returned. Lower contrast, confounders
    beside a class and blurred edges all raise it.
    """
    img, lab = case.image, case.label
    smooth = ndimage.gaussian_filter(img, (0, 1, 1, 0) if img.ndim == 4 else (0, 1, 1))
    plane = ndimage.generate_binary_structure(2, 1)
    struct = plane if lab.ndim == 2 else np.stack([np.zeros_like(plane), plane, np.zeros_like(plane)], axis=-1)
    slices = 1 if lab.ndim == 2 else max(1, int(np.any(lab > 0, axis=(0, 1)).sum()))
    out = []
    for k in range(1, int(lab.max()) + 1):
        inside = lab == k
        if inside.sum() < 10:
            continue
        radius = np.sqrt(inside.sum() / slices / np.pi)
        band = ndimage.binary_dilation(inside, struct, iterations=max(2, int(round(0.6 * radius)))) & ~inside
        out.append(min(np.minimum(np.histogram(smooth[ch][inside], bins, (0, 1))[0] / inside.sum(),
                                  np.histogram(smooth[ch][band], bins, (0, 1))[0] / band.sum()).sum()
                       for ch in range(img.shape[0])))
    return float(np.mean(out))


@lru_cache(maxsize=None)
def mean_overlap(task, level):
    return float(np.mean([class_overlap(c) for c in make_cases(task, "source", 8, 64, seed=0, difficulty=level)]))


@pytest.mark.parametrize("task", TASK_KEYS)
def test_classes_look_more_like_their_surroundings_as_the_level_rises(task):
    overlaps = [mean_overlap(task, level) for level in DIFFICULTY_LEVELS]
    # every step up is at least as hard (up to 0.02: a case's lesion may move into other tissue), and the
    # top level is clearly harder than the original suite
    assert all(b > a - 0.02 for a, b in zip(overlaps, overlaps[1:])), overlaps
    assert overlaps[2] > overlaps[0] + 0.02 and overlaps[-1] > overlaps[0] + 0.05, overlaps
