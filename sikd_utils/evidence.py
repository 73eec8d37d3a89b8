"""What the committed evidence says: the tables and sentences of the book's results page.

Everything here is computed from the per-seed files that :mod:`sikd_utils.reproduce` writes (read by
:func:`load_results`) with the rules of :mod:`sikd_utils.stats`; notebook 06 displays and glues these
tables, and ``tests/test_results_page.py`` recomputes every number from the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import stats
from .metrics import mean_ci
from .reproduce import load_results

__all__ = ["load_results", "page_tables", "verdict_sentences", "gate_flags", "task_notes", "earlier_preset_notes",
           "load_teacher_scan", "teacher_length_table", "load_teacher_length_runs", "teacher_length_effect", "fingerprint_sentences",
           "teacher_length_sentences", "headline", "PENDING", "Outcome", "outcome"]

PENDING = ("**Pending.** The evidence run (`python -m sikd_utils reproduce --preset gpu`) has not committed "
           "results for this task yet; nothing is shown for it rather than a number from another scale.")


_TEACHER_NAMES = {"teacher": "teacher", "raw_teacher": "control's raw teacher"}


def gate_flags(training: pd.DataFrame, roles: tuple[str, ...] = ("teacher",)) -> dict:
    """``task -> note`` for tasks where a teacher of ``roles`` failed the gate on some seed (shown beside
    the task's name): ``("teacher",)`` for what shows SIKD alone, add ``"raw_teacher"`` where the control
    is shown too."""
    failed: dict[str, list[str]] = {}
    for (task, role), (passes, gated) in _gate_counts(training).items():
        if role in roles and passes < gated:
            failed.setdefault(task, []).append(f"{_TEACHER_NAMES[role]} gate failed on {gated - passes}/{gated} seeds")
    return {task: f"({'; '.join(notes)})" for task, notes in failed.items()}


def task_notes(training: pd.DataFrame, earlier: dict | None = None, roles: tuple[str, ...] = ("teacher",)) -> dict:
    """``task -> note`` said beside a task's name in the figures: the failed gates of ``roles``
    (:func:`gate_flags`) and, from ``earlier`` (:func:`earlier_preset_notes`), an older preset."""
    failed, earlier = gate_flags(training, roles), earlier or {}
    return {t: " ".join(n for n in (failed.get(t), earlier.get(t)) if n) for t in {**failed, **earlier}}


def _gate_counts(training: pd.DataFrame | None) -> dict:
    """``(task, role) -> (passes, gated)``: seeds whose teacher of ``role`` passes the gate, of those gated."""
    if training is None or not len(training):
        return {}
    return {(r["task"], role): (r[f"{role}_passes"], r[f"{role}_gated"])
            for r in stats.teacher_gate(training).to_dict("records") for role in _TEACHER_NAMES if r[f"{role}_gated"]}


def earlier_preset_notes(provenance: dict, preset: str = "gpu") -> dict:
    """``task -> note`` for committed tasks trained with other teacher/student lengths than ``preset``
    now has (an earlier version of the preset): shown beside the task's name until their rerun lands."""
    from .configuration import preset_config

    notes = {}
    for task, entry in (provenance or {}).get("tasks", {}).items():
        if entry.get("preset") != preset:
            continue
        now = preset_config(preset, task)
        was = (entry.get("epochs"), entry.get("teacher_epochs"))
        if was != (now.epochs, now.teacher_epochs or now.epochs):
            notes[task] = f"(teacher trained {was[1]} epochs, an earlier {preset} preset; rerun pending)"
    return notes


def load_teacher_scan(results_dir) -> pd.DataFrame | None:
    """``teacher_scan.csv`` (every epoch of ``scripts/teacher_scan.py``'s runs), or None where absent."""
    from pathlib import Path

    path = Path(results_dir) / "teacher_scan.csv"
    return pd.read_csv(path) if path.exists() else None


def teacher_length_table(training: pd.DataFrame, provenance: dict, scan: pd.DataFrame | None,
                         seed: int = 0) -> pd.DataFrame:
    """How long the teacher must train: every seed-``seed`` SIKD teacher we have, per task and planned
    length — the evidence run's (finished) and the scan's (stopped early where ``reached`` < planned) —
    beside that seed's baseline validation Dice and the gate it sets."""
    from .data.tasks import TASKS

    entries = (provenance or {}).get("tasks", {})
    tasks = [t for t in TASKS if t in entries or (scan is not None and t in set(scan["task"]))]
    rows = []
    for task in tasks:
        entry = entries.get(task, {})
        runs = training[(training["task"] == task) & (training["seed"] == seed)].set_index("role")["best_val_dice"]
        planned = entry.get("teacher_epochs") or entry.get("epochs")
        if "teacher" in runs and planned:
            planned = int(planned)
            rows.append({"task": task, "planned epochs": planned, "run": "evidence", "reached": planned,
                         "teacher": float(runs["teacher"])})
        if scan is not None:
            for planned, group in scan[(scan["task"] == task) & (scan["seed"] == seed)
                                       & (scan["role"] == "teacher")].groupby("teacher_epochs"):
                rows.append({"task": task, "planned epochs": int(planned), "run": "scan",
                             "reached": int(group["epoch"].max()), "teacher": float(group["val_dice"].max())})
    table = pd.DataFrame(rows, columns=["task", "planned epochs", "run", "reached", "teacher"])
    baseline = training[(training["seed"] == seed) & (training["role"] == "baseline")].set_index("task")["best_val_dice"]
    table["baseline"] = table["task"].map(baseline)
    table["gate"] = table["baseline"] - stats.GATE_MARGIN
    table["passes"] = np.where(table["baseline"].notna(), np.where(table["teacher"] >= table["gate"] - 1e-12,
                                                                   "yes", "no"), "n/a")
    order = {task: i for i, task in enumerate(tasks)}
    return table.sort_values(["task", "planned epochs", "run"], key=lambda c: c.map(order) if c.name == "task" else c,
                             kind="stable").reset_index(drop=True)


def load_teacher_length_runs(results_dir) -> pd.DataFrame | None:
    """``teacher_length_runs.csv`` (every committed evidence run per task and teacher length, one row per
    seed; written by ``scripts/teacher_length_runs.py`` from the git history), or None where absent."""
    from pathlib import Path

    path = Path(results_dir) / "teacher_length_runs.csv"
    return pd.read_csv(path) if path.exists() else None


def teacher_length_effect(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task and teacher length: the teachers (mean validation Dice, seeds passing the gate) and
    SIKD − baseline in Dice points ± 95 % CI on the clean source and the severity-averaged target, paired
    by seed as on the rest of the page — does a better teacher close the gap?"""
    rows = []
    for (task, epochs), group in runs.groupby(["task", "teacher_epochs"], sort=False):
        clean = mean_ci((group["sikd_clean"] - group["baseline_clean"]).tolist())
        target = mean_ci((group["sikd_target"] - group["baseline_target"]).tolist())
        rows.append({"task": task, "teacher epochs": int(epochs), "code commit": group["code_commit"].iloc[0],
                     "seeds": len(group), "teacher": group["teacher_val"].mean(),
                     "baseline": group["baseline_val"].mean(),
                     "passes": f"{int(group['teacher_pass'].astype(bool).sum())}/{len(group)}",
                     "Δ clean": 100 * clean[0], "± clean": 100 * clean[1],
                     "Δ target": 100 * target[0], "± target": 100 * target[1]})
    return pd.DataFrame(rows, columns=["task", "teacher epochs", "code commit", "seeds", "teacher", "baseline",
                                       "passes", "Δ clean", "± clean", "Δ target", "± target"])


def teacher_length_sentences(effect: pd.DataFrame) -> list[str]:
    """One generated sentence per task run at more than one teacher length, from :func:`teacher_length_effect`."""
    lines = []
    for task, group in effect.groupby("task", sort=False):
        if len(group) < 2:
            continue
        group = group.sort_values("teacher epochs")
        arrow = " → ".join
        lines.append(
            f"**{_title(task)}**: teachers of "
            f"{arrow(str(e) for e in group['teacher epochs'])} epochs reach "
            f"{arrow(f'{v:.3f}' for v in group['teacher'])} (gate passed by {arrow(group['passes'])} seeds); "
            f"SIKD − baseline goes {arrow(f'{d:+.2f} ± {h:.2f}' for d, h in zip(group['Δ clean'], group['± clean']))} "
            f"points in-domain and {arrow(f'{d:+.1f} ± {h:.1f}' for d, h in zip(group['Δ target'], group['± target']))}"
            " on the target.")
    return lines


def page_tables(scores: pd.DataFrame, training: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The results page's tables (Dice in points where a column says so).

    * ``verdicts`` — per task: intra and cross Δ (SIKD − baseline) ± 95 % CI, their verdicts, gate;
    * ``versus_paper`` — per task and kind (intra/cross): our Δ ± CI beside the paper's Δ;
    * ``gate`` — per task: validation Dice of baseline, teacher (mean images) and raw teacher; passes;
    * ``control`` — per task, on clean and on the target (severity-averaged): SIKD − baseline,
      control − baseline and SIKD − control, each ± 95 % CI, and the gate of the teachers behind each;
    * ``degradation`` — per task and family: degradation of each method and SIKD's minus the baseline's;
    * ``fingerprint`` — per task, family and severity: SIKD − baseline ± CI (the heat-maps' cells);
    * ``curves`` — per task, method and severity of clean and target: Dice ± CI (the severity curves).
    """
    from .paper import fig1_table

    if not len(scores):
        return {}
    verdicts = stats.verdicts(scores, training)
    paper = fig1_table().set_index("task")
    rows = []
    for r in verdicts.itertuples():
        for kind in ("intra", "cross"):
            rows.append({"task": r.task, "kind": kind, "delta": 100 * getattr(r, f"{kind}_delta"),
                         "ci": 100 * getattr(r, f"{kind}_ci"), "verdict": getattr(r, f"{kind}_verdict"),
                         "paper_delta": float(paper.loc[r.task, f"{kind}_delta"]) if r.task in paper.index else np.nan})
    versus = pd.DataFrame(rows)
    shown = verdicts.assign(intra_delta=100 * verdicts["intra_delta"], intra_ci=100 * verdicts["intra_ci"],
                            cross_delta=100 * verdicts["cross_delta"], cross_ci=100 * verdicts["cross_ci"])
    gate = stats.teacher_gate(training) if len(training) else pd.DataFrame()
    summary = stats.method_summary(scores)
    curves = summary[summary["family"].isin(["clean", "target"])].reset_index(drop=True)
    return {"verdicts": shown, "versus_paper": versus, "gate": gate, "control": control_table(scores, training),
            "degradation": stats.degradation_scores(scores), "fingerprint": stats.paired_deltas(scores, "sikd"),
            "curves": curves}


def _title(task: str) -> str:
    """A task's title where the suite knows it, else its name."""
    from .data.tasks import TASKS

    return TASKS[task].title if task in TASKS else task


def _named(deltas: pd.Series) -> str:
    return ", ".join(f"{family} ({delta:+.1f})" for family, delta in deltas.items())


def _averaged_target(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (task, seed, method): Dice averaged over the target's severities 1–5 (family "target (mean)")."""
    target = scores[(scores["family"] == "target") & (scores["severity"] > 0)]
    mean = target.groupby(["task", "seed", "method"], sort=False)["dice"].mean().reset_index()
    return mean.assign(family="target (mean)", severity=0)


def control_table(scores: pd.DataFrame, training: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task, on the clean test set and the severity-averaged target: the three paired differences;
    with ``training``, ``gate`` says how many seeds' teachers behind the comparison pass the gate (the
    control's is its raw teacher), so that a failed one is flagged where its student is compared."""
    base = pd.concat([scores[scores["family"] == "clean"][["task", "seed", "method", "family", "severity", "dice"]],
                      _averaged_target(scores)], ignore_index=True)
    counts = _gate_counts(training)
    teachers = {"sikd": "teacher", "control": "raw_teacher"}
    rows = []
    for label, (method, reference) in {"SIKD − baseline": ("sikd", "baseline"),
                                       "control − baseline": ("control", "baseline"),
                                       "SIKD − control": ("sikd", "control")}.items():
        deltas = stats.paired_deltas(base, method, reference)
        for r in deltas.itertuples():
            gate = ", ".join("{} {}/{} pass".format(_TEACHER_NAMES[teachers[m]], *counts[(r.task, teachers[m])])
                             for m in (method, reference) if (r.task, teachers.get(m)) in counts)
            rows.append({"task": r.task, "test set": r.family, "comparison": label, "delta": 100 * r.delta,
                         "ci": 100 * r.delta_ci, "wins": f"{r.wins}/{r.n_seeds}", "gate": gate or "n/a"})
    return pd.DataFrame(rows, columns=["task", "test set", "comparison", "delta", "ci", "wins", "gate"])


def fingerprint_sentences(fingerprint: pd.DataFrame, families_named: int = 2) -> list[str]:
    """Per task, the heat-map in words: in how many shifted (family, severity) cells SIKD gains, loses or
    ties (the rule of the heat-maps: a CI clear of zero), and the families where it does worst and best,
    by SIKD − baseline averaged over their severities, in points (``fingerprint``: :func:`page_tables`')."""
    lines = []
    for task, cells in fingerprint[fingerprint["family"] != "clean"].groupby("task", sort=False):
        counts = cells["outcome"].value_counts()
        by_family = (100 * cells.groupby("family", sort=False)["delta"].mean()).sort_values()
        worst = by_family[by_family < 0].head(families_named)
        best = by_family[by_family > 0].iloc[::-1].head(families_named)
        lines.append(f"**{_title(task)}** — of {len(cells)} shifted test sets, "
                     f"SIKD gains on {counts.get('gain', 0)}, loses on {counts.get('loss', 0)} and ties on "
                     f"{counts.get('tie', 0)}; worst families: {_named(worst) or 'none'}; best: "
                     f"{_named(best) or 'none'} (points, averaged over severities).")
    return lines


def headline(verdicts: pd.DataFrame, gate: pd.DataFrame | None = None) -> str:
    """The results in one sentence: on how many tasks each verdict of :func:`page_tables`' ``verdicts``
    came out, intra- and cross-domain, naming the tasks where the paper's claim held (or held in part),
    and how many teachers passed the gate (``gate``: :func:`sikd_utils.stats.teacher_gate`)."""
    def counted(kind: str) -> str:
        parts = []
        for verdict in ("reproduced", "mixed", "not reproduced"):
            tasks = verdicts.loc[verdicts[f"{kind}_verdict"] == verdict, "task"]
            if not len(tasks) and verdict != "reproduced":
                continue
            named = f" ({', '.join(_title(t) for t in tasks)})" if len(tasks) and verdict != "not reproduced" else ""
            parts.append(f"{verdict} on {len(tasks) or 'none'}{named}")
        return ", ".join(parts)

    n = len(verdicts)
    line = (f"Of {n} task{'s' if n != 1 else ''}, the paper's intra-domain gain is {counted('intra')}; its "
            f"cross-domain gain is {counted('cross')}")
    if gate is not None and len(gate):
        line += (f". {int(gate['teacher_passes'].sum())} of {int(gate['teacher_gated'].sum())} SIKD teachers "
                 f"and {int(gate['raw_teacher_passes'].sum())} of {int(gate['raw_teacher_gated'].sum())} of the "
                 f"control's raw teachers passed the gate")
    return line + "."


def verdict_sentences(verdicts: pd.DataFrame, notes: dict | None = None) -> list[str]:
    """One generated sentence per task, from :func:`page_tables`' ``verdicts`` (points); ``notes`` maps a
    task to a remark appended to its sentence (e.g. :func:`earlier_preset_notes`)."""
    lines = []
    for r in verdicts.itertuples():
        title = _title(r.task)
        intra = f"{r.intra_delta:+.1f} ± {r.intra_ci:.1f}" if np.isfinite(r.intra_ci) else f"{r.intra_delta:+.1f}"
        cross = f"{r.cross_delta:+.1f} ± {r.cross_ci:.1f}" if np.isfinite(r.cross_ci) else f"{r.cross_delta:+.1f}"
        gate = f"; {r.gate}" if isinstance(getattr(r, "gate", None), str) else ""
        gate += f" {notes[r.task]}" if notes and r.task in notes else ""
        lines.append(f"**{title}** — intra-domain: **{r.intra_verdict}** (Δ {intra} points); cross-domain: "
                     f"**{r.cross_verdict}** (Δ {cross} points averaged over target severities, "
                     f"{r.cross_gains} gain(s) and {r.cross_losses} loss(es) among {r.cross_n}){gate}.")
    return lines


class Outcome(NamedTuple):
    """What the reproduction found: the sentence the book opens with and the numbers behind its figure."""

    headline: str                  # :func:`headline`, with the tasks still pending named
    verdicts: pd.DataFrame         # :func:`sikd_utils.stats.verdicts` (Dice fractions), for ``viz.delta_vs_paper``
    notes: dict                    # task -> note said beside its name (:func:`task_notes`)
    source: Path | None            # the results folder read, None where none was found


def outcome(results_dir=None, tasks=None) -> Outcome:
    """The book's answer in one sentence, computed from the committed results (``results_dir``: default
    the book's, found by :func:`sikd_utils.results.find_results`), so the landing page and notebook 00
    open with the same verdict as notebook 06 and the results page, never with a typed one."""
    from .data.tasks import TASKS
    from .results import find_results

    source = Path(results_dir) if results_dir is not None else find_results()
    if source is None or not (source / "provenance.json").exists():
        return Outcome(PENDING, pd.DataFrame(), {}, source)
    scores, training, prov = load_results(source)
    tasks = list(tasks) if tasks is not None else list(TASKS)
    scores, training = scores[scores["task"].isin(tasks)], training[training["task"].isin(tasks)]
    done = [t for t in tasks if t in set(scores["task"])]
    if not done:
        return Outcome(PENDING, pd.DataFrame(), {}, source)
    tables = page_tables(scores, training)
    line = headline(tables["verdicts"], tables["gate"])
    pending = [t for t in tasks if t not in done]
    if pending:
        line += f" Pending: {', '.join(_title(t) for t in pending)}."
    notes = task_notes(training, earlier_preset_notes(prov, "gpu"))
    return Outcome(line, stats.verdicts(scores, training), notes, source)
