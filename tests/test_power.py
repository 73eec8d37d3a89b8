"""The test-set power computation recovers known variance parts and gives the case count a target needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sikd_utils.power import cases_needed, half_width, power_table, variance_components


def _simulate(seed_sd, case_sd, n_seeds, n_cases, rng):
    case_effect = rng.normal(0, 0.05, n_cases)  # fixed test set: the same for every seed
    rows = []
    for s in range(n_seeds):
        offset = rng.normal(0.002, seed_sd)
        for i in range(n_cases):
            rows.append({"seed": s, "case": i, "difference": offset + case_effect[i] + rng.normal(0, case_sd)})
    return pd.DataFrame(rows)


def test_variance_parts_are_recovered():
    rng = np.random.default_rng(0)
    parts = variance_components(_simulate(0.004, 0.03, 40, 400, rng))
    assert parts["seed"] == pytest.approx(0.004 ** 2, rel=0.35)
    assert parts["case"] == pytest.approx(0.03 ** 2, rel=0.05)


def test_the_half_width_matches_the_spread_of_simulated_runs():
    """Repeated 5-seed experiments on one fixed test set: the mean CI half-width is what half_width predicts."""
    rng = np.random.default_rng(1)
    parts = {"seed": 0.003 ** 2, "case": 0.04 ** 2}
    widths = []
    for _ in range(400):
        frame = _simulate(0.003, 0.04, 5, 60, rng)
        deltas = frame.groupby("seed")["difference"].mean()
        widths.append(2.776 * deltas.std(ddof=1) / np.sqrt(5))
    # E[sd] is a little under sigma (c4 = 0.94 for 5 values)
    assert np.mean(widths) == pytest.approx(0.94 * half_width(parts, 60, 5), rel=0.06)


def test_cases_needed_meets_the_target_and_says_when_none_can():
    parts = {"seed": 0.002 ** 2, "case": 0.05 ** 2}
    n = cases_needed(parts, 5, target=0.01)
    assert half_width(parts, n, 5) <= 0.01 < half_width(parts, n - 1, 5)
    assert cases_needed({"seed": 0.01 ** 2, "case": 0.05 ** 2}, 5, target=0.01) is None  # seeds, not cases


def test_power_table_and_bad_input():
    frame = _simulate(0.002, 0.04, 3, 30, np.random.default_rng(2)).assign(task="polyp")
    table = power_table(frame)
    assert list(table["task"]) == ["polyp"] and table["pilot cases"].iloc[0] == 30
    with pytest.raises(ValueError, match="every seed must be scored on every case"):
        variance_components(frame.iloc[1:])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['difference'\]"):
        variance_components(frame.drop(columns="difference"))
