"""How large a test set a claim needs: the 95 % CI of SIKD − baseline over training seeds, as a function of
the number of test cases.

Each seed ``s`` gives one paired difference ``Δ_s``, the mean over the ``n`` test cases of the per-case
differences ``d_si`` (SIKD's Dice minus the baseline's on case ``i``). The test set is fixed and shared by every
seed, so the interval over seeds covers training randomness only, and it has two parts:

* ``σ²_seed`` — one seed's student is better or worse than its baseline on every case alike;
* ``σ²_case`` — a seed's difference on one case beyond that (the seed × case interaction), which averaging
  over ``n`` cases shrinks to ``σ²_case / n``.

So ``Var(Δ_s) = σ²_seed + σ²_case / n`` and the half-width over ``S`` seeds is
``t(0.975, S − 1) · sqrt(Var(Δ_s) / S)``. Both parts are estimated from per-case scores of a pilot run (a
two-way layout without replication, seeds × cases, the case effect taken out since the test set is fixed).
More cases shrink only the second part: where ``σ²_seed`` alone is too large, no test set is large enough,
and :func:`cases_needed` says so (None) — more seeds are then the remedy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["variance_components", "half_width", "cases_needed", "power_table"]


def variance_components(per_case: pd.DataFrame, value: str = "difference") -> dict:
    """``{"seed": σ²_seed, "case": σ²_case, "n_seeds", "n_cases"}`` from a table with columns ``seed``,
    ``case`` and ``value`` (one row per seed and case; every seed on every case)."""
    missing = [c for c in ("seed", "case", value) if c not in per_case.columns]
    if missing:
        raise ValueError(f"per-case table lacks column(s) {missing}; expected seed, case and {value}")
    grid = per_case.pivot_table(index="seed", columns="case", values=value, aggfunc="mean")
    if grid.isna().any().any():
        raise ValueError("every seed must be scored on every case (the test set is shared by all seeds); "
                         f"{int(grid.isna().sum().sum())} (seed, case) pairs are missing")
    s, n = grid.shape
    if s < 2 or n < 2:
        raise ValueError(f"need at least 2 seeds and 2 cases, got {s} seed(s) and {n} case(s)")
    x = grid.to_numpy(float)
    seed_means, case_means, grand = x.mean(axis=1), x.mean(axis=0), x.mean()
    residual = x - seed_means[:, None] - case_means[None, :] + grand
    ms_case = float((residual ** 2).sum() / ((s - 1) * (n - 1)))
    ms_seed = float(n * ((seed_means - grand) ** 2).sum() / (s - 1))
    return {"seed": max(0.0, (ms_seed - ms_case) / n), "case": ms_case, "n_seeds": s, "n_cases": n}


def half_width(components: dict, n_cases: int, n_seeds: int) -> float:
    """The expected 95 % CI half-width of the mean ``Δ`` over ``n_seeds`` seeds with ``n_cases`` test cases."""
    if n_seeds < 2 or n_cases < 1:
        raise ValueError(f"need n_seeds >= 2 and n_cases >= 1, got {n_seeds} and {n_cases}")
    variance = components["seed"] + components["case"] / n_cases
    return float(stats.t.ppf(0.975, n_seeds - 1) * math.sqrt(variance / n_seeds))


def cases_needed(components: dict, n_seeds: int, target: float = 0.01, max_cases: int = 100_000) -> int | None:
    """The fewest test cases for a half-width ≤ ``target`` (Dice fraction: 0.01 is one point) over ``n_seeds``
    seeds; None when even ``max_cases`` cases cannot (the seed part alone is too wide)."""
    t = stats.t.ppf(0.975, n_seeds - 1)
    room = (target / t) ** 2 * n_seeds - components["seed"]
    if room <= 0:
        return None
    n = max(1, math.ceil(components["case"] / room))
    return n if n <= max_cases else None


def power_table(per_case: pd.DataFrame, n_seeds: int = 5, target: float = 0.01) -> pd.DataFrame:
    """Per task (and test set, if a ``test_set`` column is given): the variance parts, the half-width at the
    pilot's case count and the cases needed for ``target`` with ``n_seeds`` seeds."""
    keys = [k for k in ("task", "test_set") if k in per_case.columns]
    rows = []
    for key, group in per_case.groupby(keys) if keys else [((), per_case)]:
        parts = variance_components(group)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "pilot seeds": parts["n_seeds"], "pilot cases": parts["n_cases"],
                     "seed SD (points)": 100 * np.sqrt(parts["seed"]),
                     "seed x case SD (points)": 100 * np.sqrt(parts["case"]),
                     "half-width now (points)": 100 * half_width(parts, parts["n_cases"], n_seeds),
                     "cases needed": cases_needed(parts, n_seeds, target)})
    return pd.DataFrame(rows)
