"""The difficulty calibration: baselines only, and the rule that picks each task's paper level."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sikd_utils.calibrate import CLEAN_TOLERANCE, choose_levels

PAPER = {"polyp": (88.7, 0, 0, 70.2, 0, 0), "fundus": (94.85, 0, 0, 62.7, 0, 0)}


def _frame(task, level_scores):
    rows = []
    for level, (clean, targets) in level_scores.items():
        for seed in (0, 1):
            rows.append({"task": task, "difficulty": level, "seed": seed, "family": "clean", "severity": 0,
                         "dice": clean / 100, "n_cases": 40})
            for severity, dice in enumerate(targets, start=1):
                rows.append({"task": task, "difficulty": level, "seed": seed, "family": "target",
                             "severity": severity, "dice": dice / 100, "n_cases": 40})
    return pd.DataFrame(rows)


def test_the_lowest_level_within_both_tolerances_is_chosen():
    frame = pd.concat([
        _frame("polyp", {0: (97.9, [95, 90, 85, 80, 74]), 1: (91.0, [88, 80, 72, 66, 60]),
                         2: (88.0, [85, 78, 70, 63, 55])}),
        _frame("fundus", {0: (97.5, [96, 90, 80, 70, 60]), 1: (80.0, [70, 65, 62, 60, 55])}),
    ])
    table = choose_levels(frame, PAPER).set_index("task")
    # polyp level 0: clean 97.9 is 9.2 points above 88.7; level 1: 91.0 (2.3 off), target@3 72 (1.8 off)
    assert table.loc["polyp", "level"] == 1 and table.loc["polyp", "severity"] == 3
    assert table.loc["polyp", "clean"] == pytest.approx(91.0)
    # fundus: level 0's clean is 2.65 off but no severity... level 0 target@4 = 70 (7.3 off), @5 60 (2.7 off)
    assert table.loc["fundus", "level"] == 0 and table.loc["fundus", "severity"] == 5


def test_no_level_fits_is_said():
    frame = _frame("polyp", {0: (99.0, [98, 97, 96, 95, 94])})
    table = choose_levels(frame, PAPER)
    assert table.loc[0, "level"] == "none" and abs(99.0 - 88.7) > CLEAN_TOLERANCE


def test_calibrate_refuses_bad_requests_before_work(tmp_path):
    from sikd_utils.calibrate import calibrate

    with pytest.raises(ValueError, match="levels from"):
        calibrate("tiny", ("polyp",), (99,), (0, 1), str(tmp_path / "runs"), str(tmp_path / "results"))
    with pytest.raises(ValueError, match="repeat a seed"):
        calibrate("tiny", ("polyp",), (0,), (0, 0), str(tmp_path / "runs"), str(tmp_path / "results"))
    assert not (tmp_path / "runs").exists()


def test_a_tiny_calibration_trains_baselines_only_and_writes_its_table(tmp_path):
    from sikd_utils.calibrate import calibrate

    said = []
    status = calibrate("tiny", ("polyp",), (0, 2), (0, 1), str(tmp_path / "runs"), str(tmp_path / "results"),
                       device="cpu", log=said.append)
    assert status == 0, said
    frame = pd.read_csv(tmp_path / "results" / "calibration.csv")
    assert set(frame["difficulty"]) == {0, 2} and set(frame["seed"]) == {0, 1}
    assert set(frame["family"]) == {"clean", "target"} and frame["dice"].between(0, 1).all()
    roles = {p.parent.name for p in (tmp_path / "runs").rglob("*.pt")}
    assert roles == {"baseline"}, roles  # never a teacher or a student
    record = json.loads((tmp_path / "results" / "calibration.json").read_text())
    assert record["levels"] == [0, 2] and "baselines only" in record["trained"]
    # rerun: every job is reused
    said.clear()
    assert calibrate("tiny", ("polyp",), (0, 2), (0, 1), str(tmp_path / "runs"), str(tmp_path / "results"),
                     device="cpu", log=said.append) == 0
    assert sum("(reused)" in line for line in said) == 4
