"""Statistics over seeds: one tidy schema in, tables out — whatever the methods.

Input is a *seed-score* table, one row per (task, seed, method, test set) with columns ``seed``,
``method``, ``family``, ``severity``, ``dice`` (and optionally ``task``, ``hd95_mm``). Every number the
book reports is computed here from such a table:

* :func:`method_summary` — Dice per (method, family, severity), mean ± 95 % CI over seeds;
* :func:`compare_methods` / :func:`paired_deltas` — SIKD − baseline (and control − baseline), paired by
  seed, mean ± 95 % CI, wins;
* :func:`degradation_scores` — per shift family, the severity-weighted drop from clean (ROOD-MRI style);
* :func:`teacher_gate` — whether each teacher has learned;
* :func:`verdicts` — reproduced / not reproduced / mixed per task, intra- and cross-domain.

Dice values are fractions in [0, 1]; figures and pages multiply by 100 where they say "points".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import mean_ci

__all__ = ["METHODS", "REFERENCE", "GATE_MARGIN", "SEVERITY_WEIGHT", "attach_keys", "method_summary",
           "compare_methods", "paired_deltas", "degradation_scores", "teacher_gate", "gate_by_seed",
           "verdicts", "severity_table", "VERDICT_RULE", "GATE_RULE", "DEGRADATION_RULE"]

#: The tested methods ("sikd" is the SIKD student, "control" the plain feature-distillation student).
METHODS = ("baseline", "sikd", "control")
#: The method every difference is taken against.
REFERENCE = "baseline"
#: A teacher may be this far (Dice fraction) below the baseline and still pass the gate.
GATE_MARGIN = 0.02
#: Severity s weighs SEVERITY_WEIGHT ** s in the degradation score (ROOD-MRI).
SEVERITY_WEIGHT = 2 / 3

#: The teacher gate, in words.
GATE_RULE = (f"A teacher passes the gate when its best validation Dice (the SIKD teacher on class-wise mean "
             f"images, the control's raw teacher on raw images) is at least the same seed's baseline "
             f"validation Dice on raw images minus {GATE_MARGIN:g} (2 Dice points). A teacher below the gate "
             f"has not learned what the student is asked to copy; the rows that use it are flagged, never "
             f"dropped.")
#: The degradation score, in words.
DEGRADATION_RULE = ("Degradation of a method under a shift family: the severity-weighted mean drop of Dice "
                    "from the clean test set, D = sum_s w_s (Dice_clean - Dice_s) / sum_s w_s over severities "
                    "s = 1..5 with w_s = (2/3)^s (the severity weighting of ROOD-MRI: mild, realistic shifts "
                    "count most). Computed per seed, then mean and 95 % CI over seeds; lower is more robust.")
#: The verdict rule, in words.
VERDICT_RULE = ("Per task and test set, the paired difference SIKD - baseline over seeds is a *gain* when its "
                "95 % CI lies above 0, a *loss* when it lies below 0, a *tie* otherwise. Intra-domain (clean "
                "source test set): reproduced = gain; not reproduced = tie or loss. Cross-domain (the realistic "
                "target at severities 1-5): reproduced = at least one gain, no loss, and the severity-averaged "
                "difference is a gain; not reproduced = no gain; mixed = anything else. The paper reports gains "
                "in both (intra +1.0 to +5.5, cross +3.6 to +13.1 Dice points).")


def attach_keys(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with typed ``family``/``severity`` columns (derived once from ``test_set`` if missing)."""
    if {"family", "severity"} <= set(table.columns):
        return table
    if "test_set" not in table.columns:
        raise ValueError(f"a seed-score table needs family and severity (or test_set) columns, has {list(table.columns)}")
    from .configuration import TestSet

    keys = [TestSet.of(name) for name in table["test_set"]]
    return table.assign(family=[k.family for k in keys], severity=[k.severity for k in keys])


def _group_keys(table: pd.DataFrame) -> list[str]:
    return (["task"] if "task" in table.columns else []) + ["family", "severity"]


def method_summary(seed_scores: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Per (task, family, severity, method): mean ± 95 % CI half-width over seeds, and the seed count."""
    seed_scores = attach_keys(seed_scores)
    keys = _group_keys(seed_scores) + ["method"]
    rows = []
    for key, group in seed_scores.groupby(keys, sort=False):
        mean, half = mean_ci(group[metric].tolist())
        row = dict(zip(keys, key))
        if "test_set" in group.columns:
            row["test_set"] = group["test_set"].iloc[0]
        rows.append({**row, metric: mean, f"{metric}_ci": half, "n_seeds": int(group[metric].notna().sum())})
    return pd.DataFrame(rows)


def _seed_by_method(group: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``group.pivot_table(index="seed", columns="method", values=metric, aggfunc="mean")``, several times
    faster (these tables are built once per test set, hundreds of times per results page): the mean per
    (seed, method), (seed, method) pairs without a value dropped, so a method without any value has no column."""
    means = group.groupby(["seed", "method"])[metric].mean().dropna()
    return means.unstack("method") if len(means) else pd.DataFrame()


def paired_deltas(seed_scores: pd.DataFrame, method: str = "sikd", reference: str = REFERENCE,
                  metric: str = "dice") -> pd.DataFrame:
    """Per (task, family, severity): ``method − reference`` paired by seed — mean, 95 % CI, wins.

    Columns: ``delta``, ``delta_ci`` (half-width), ``delta_lo``, ``delta_hi``, ``wins`` (seeds where the
    method is better), ``n_seeds``, ``significant`` (the CI excludes 0) and ``outcome``
    ("gain", "loss" or "tie", see :data:`VERDICT_RULE`).
    """
    seed_scores = attach_keys(seed_scores)
    keys = _group_keys(seed_scores)
    # one grouped mean over the whole table, then plain dicts per test set: the same numbers as a
    # pivot per test set (the mean per (seed, method) of that test set's rows), without hundreds of pivots
    means = seed_scores.groupby([*keys, "seed", "method"], sort=True)[metric].mean().dropna()
    per_key: dict = {}
    for (*key, seed, name), value in means.items():
        per_key.setdefault(tuple(key), {}).setdefault(name, {})[seed] = value
    rows = []
    for key in seed_scores.groupby(keys, sort=False).groups:  # first-seen order, as groupby(sort=False)
        wide = per_key.get(key if isinstance(key, tuple) else (key,), {})
        if method not in wide or reference not in wide:
            continue
        seeds = sorted(set(wide[method]) & set(wide[reference]))
        diff = [wide[method][s] - wide[reference][s] for s in seeds]
        delta, half = mean_ci(diff)
        rows.append({**dict(zip(keys, key)), "method": method, "delta": delta, "delta_ci": half,
                     "delta_lo": delta - half, "delta_hi": delta + half,
                     "wins": int(sum(d > 0 for d in diff)), "n_seeds": len(diff)})
    table = pd.DataFrame(rows, columns=[*keys, "method", "delta", "delta_ci", "delta_lo", "delta_hi", "wins",
                                        "n_seeds"])
    table["significant"] = (table["delta_lo"] > 0) | (table["delta_hi"] < 0)
    table["outcome"] = np.where(table["delta_lo"] > 0, "gain", np.where(table["delta_hi"] < 0, "loss", "tie"))
    return table


def compare_methods(seed_scores: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Per test set: each method's mean ± 95 % CI over seeds and every method's paired difference to the
    baseline.

    The SIKD columns keep their historical names (``sikd``, ``delta``, ``delta_ci``, ``sikd_wins``); other
    methods get ``<method>_delta``, ``<method>_delta_ci`` and ``<method>_wins``.
    """
    seed_scores = attach_keys(seed_scores)
    keys = _group_keys(seed_scores)
    methods = [m for m in METHODS if m in set(seed_scores["method"])]
    methods += [m for m in seed_scores["method"].unique() if m not in methods]
    rows = []
    for key, group in seed_scores.groupby(keys, sort=False):
        wide = _seed_by_method(group, metric)
        row = dict(zip(keys, key))
        if "test_set" in group.columns:
            row["test_set"] = group["test_set"].iloc[0]
        row["n_seeds"] = len(wide)
        for method in methods:
            if method in wide:
                row[method], row[f"{method}_ci"] = mean_ci(wide[method].tolist())
        for method in methods:
            if method == REFERENCE or method not in wide or REFERENCE not in wide:
                continue
            diff = (wide[method] - wide[REFERENCE]).dropna().tolist()
            prefix = "" if method == "sikd" else f"{method}_"
            row[f"{prefix}delta"], row[f"{prefix}delta_ci"] = mean_ci(diff)
            row[f"{method}_wins"] = int(sum(d > 0 for d in diff))
        rows.append(row)
    return pd.DataFrame(rows)


def degradation_scores(seed_scores: pd.DataFrame, metric: str = "dice",
                       weight: float = SEVERITY_WEIGHT) -> pd.DataFrame:
    """Per (task, method, family): the severity-weighted drop from clean (see :data:`DEGRADATION_RULE`).

    Columns ``degradation`` and ``degradation_ci`` (mean and 95 % CI half-width over seeds), and
    ``delta_vs_baseline``/``delta_vs_baseline_ci``: the method's degradation minus the baseline's, paired
    by seed (negative = degrades less than the baseline).
    """
    seed_scores = attach_keys(seed_scores)
    has_task = "task" in seed_scores.columns
    frame = seed_scores.assign(task=seed_scores["task"] if has_task else "")
    per_seed = {}
    for (task, seed, method), group in frame.groupby(["task", "seed", "method"], sort=False):
        clean = group.loc[group["family"] == "clean", metric]
        if clean.empty:
            continue
        clean_value = float(clean.mean())
        for family, fam in group[(group["family"] != "clean") & (group["severity"] > 0)].groupby("family", sort=False):
            weights = np.array([weight ** float(s) for s in fam["severity"]])
            drops = clean_value - fam[metric].to_numpy(dtype=float)
            ok = ~np.isnan(drops)
            if ok.any():
                per_seed[(task, method, family, seed)] = float((weights[ok] * drops[ok]).sum() / weights[ok].sum())
    rows = []
    keyset = list(dict.fromkeys(k[:3] for k in per_seed))  # first-seen order
    for task, method, family in keyset:
        seeds = sorted(s for (t, m, f, s) in per_seed if (t, m, f) == (task, method, family))
        values = [per_seed[(task, method, family, s)] for s in seeds]
        mean, half = mean_ci(values)
        base = [per_seed.get((task, REFERENCE, family, s)) for s in seeds]
        paired = [v - b for v, b in zip(values, base) if b is not None]
        dmean, dhalf = mean_ci(paired) if method != REFERENCE and paired else (float("nan"), float("nan"))
        rows.append({"task": task, "method": method, "family": family, "degradation": mean,
                     "degradation_ci": half, "delta_vs_baseline": dmean, "delta_vs_baseline_ci": dhalf,
                     "n_seeds": len(values)})
    table = pd.DataFrame(rows, columns=["task", "method", "family", "degradation", "degradation_ci",
                                        "delta_vs_baseline", "delta_vs_baseline_ci", "n_seeds"])
    return table if has_task else table.drop(columns="task")


def gate_by_seed(training: pd.DataFrame, margin: float = GATE_MARGIN) -> pd.DataFrame:
    """Per (task, seed): baseline, teacher and raw-teacher validation Dice and whether each teacher passes.

    ``training`` has one row per (task, seed, role) with ``best_val_dice``. Columns: ``baseline_val``,
    ``teacher_val``, ``raw_teacher_val``, ``teacher_pass``, ``raw_teacher_pass`` (NaN/None where a role
    was not trained). See :data:`GATE_RULE`.
    """
    frame = training.assign(task=training["task"] if "task" in training.columns else "")
    wide = frame.pivot_table(index=["task", "seed"], columns="role", values="best_val_dice", aggfunc="mean")
    out = pd.DataFrame(index=wide.index)
    out["baseline_val"] = wide.get("baseline")
    for role in ("teacher", "raw_teacher"):
        out[f"{role}_val"] = wide.get(role)
        if role in wide and "baseline" in wide:
            passed = wide[role] >= wide["baseline"] - margin - 1e-12
            out[f"{role}_pass"] = passed.where(wide[role].notna() & wide["baseline"].notna())
        else:
            out[f"{role}_pass"] = None
    out = out.reset_index()
    return out if "task" in training.columns else out.drop(columns="task")


def teacher_gate(training: pd.DataFrame, margin: float = GATE_MARGIN) -> pd.DataFrame:
    """Per task: mean validation Dice of baseline, teacher and raw teacher, and passes out of seeds."""
    per_seed = gate_by_seed(training if "task" in training.columns else training.assign(task=""), margin)
    rows = []
    for task, group in per_seed.groupby("task", sort=False):
        row = {"task": task, "n_seeds": len(group)}
        for role in ("baseline", "teacher", "raw_teacher"):
            row[f"{role}_val"] = float(group[f"{role}_val"].mean()) if group[f"{role}_val"].notna().any() else float("nan")
        for role in ("teacher", "raw_teacher"):
            flags = group[f"{role}_pass"].dropna()
            row[f"{role}_passes"] = int(flags.astype(bool).sum())
            row[f"{role}_gated"] = int(len(flags))
        row["gate"] = "pass" if row["teacher_passes"] == row["teacher_gated"] and row["teacher_gated"] else (
            "FAIL" if row["teacher_gated"] else "n/a")
        rows.append(row)
    return pd.DataFrame(rows)


def _outcome(lo: float, hi: float) -> str:
    if lo > 0:
        return "gain"
    if hi < 0:
        return "loss"
    return "tie"


def verdicts(seed_scores: pd.DataFrame, training: pd.DataFrame | None = None, method: str = "sikd") -> pd.DataFrame:
    """Per task: the intra- and cross-domain verdict of :data:`VERDICT_RULE`, with the numbers behind it.

    Columns: ``intra_delta``/``intra_ci``/``intra_verdict``, ``cross_delta``/``cross_ci`` (the
    severity-averaged target difference), ``cross_gains``/``cross_losses``/``cross_n`` (target
    severities), ``cross_verdict``, and ``gate`` (from :func:`teacher_gate` when ``training`` is given).
    """
    seed_scores = attach_keys(seed_scores)
    frame = seed_scores if "task" in seed_scores.columns else seed_scores.assign(task="")
    deltas = paired_deltas(frame, method)
    gates = teacher_gate(training).set_index("task") if training is not None and len(training) else None
    rows = []
    for task, group in deltas.groupby("task", sort=False):
        row = {"task": task}
        intra = group[group["family"] == "clean"]
        if len(intra):
            r = intra.iloc[0]
            row.update(intra_delta=r["delta"], intra_ci=r["delta_ci"])
            row["intra_verdict"] = "reproduced" if _outcome(r["delta_lo"], r["delta_hi"]) == "gain" else "not reproduced"
        else:
            row.update(intra_delta=float("nan"), intra_ci=float("nan"), intra_verdict="no data")
        target = group[(group["family"] == "target") & (group["severity"] > 0)]
        if len(target):
            sub = frame[(frame["task"] == task) & (frame["family"] == "target") & (frame["severity"] > 0)]
            wide = sub.pivot_table(index=["seed", "severity"], columns="method", values="dice", aggfunc="mean")
            averaged = (wide[method] - wide[REFERENCE]).groupby(level="seed").mean().dropna().tolist()
            mean, half = mean_ci(averaged)
            gains = int((target["outcome"] == "gain").sum())
            losses = int((target["outcome"] == "loss").sum())
            avg_outcome = _outcome(mean - half, mean + half) if not math.isnan(half) else "tie"
            if gains and not losses and avg_outcome == "gain":
                verdict = "reproduced"
            elif not gains:
                verdict = "not reproduced"
            else:
                verdict = "mixed"
            row.update(cross_delta=mean, cross_ci=half, cross_gains=gains, cross_losses=losses,
                       cross_n=len(target), cross_verdict=verdict)
        else:
            row.update(cross_delta=float("nan"), cross_ci=float("nan"), cross_gains=0, cross_losses=0, cross_n=0,
                       cross_verdict="no data")
        if gates is not None and task in gates.index:
            g = gates.loc[task]
            row["gate"] = f"teacher gate: {g['teacher_passes']}/{g['teacher_gated']} seeds pass"
        rows.append(row)
    return pd.DataFrame(rows)


def severity_table(results: Sequence) -> pd.DataFrame:
    """Stack the comparison tables of several experiment results (e.g. one per task), tagged by task."""
    return pd.concat([r.comparison.assign(task=r.config.task) for r in results], ignore_index=True)
