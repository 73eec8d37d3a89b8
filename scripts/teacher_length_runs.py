"""Every evidence run committed so far, per task and teacher length: does a better teacher close the gap?

The evidence preset's teacher length changed as runs came in (40 → 80 epochs, then 160 for the 3D tasks),
and each rerun replaced the task's files in ``book/results/``. Git keeps the earlier ones; this script
reads every committed version of ``<task>_training.csv``, ``<task>.csv`` and ``provenance.json`` made by
the gpu preset and writes one row per (task, teacher length, seed) — teacher and baseline validation
Dice, and SIKD's, the control's and the baseline's test Dice on the clean source and the realistic target
(mean over its severities) — to ``book/results/teacher_length_runs.csv``, which notebook 06 renders:

    python scripts/teacher_length_runs.py            # from the repository root, in a clone with history

Runs with the same run key (the same settings and data) appear once, from their latest commit.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from pathlib import Path

import pandas as pd

from sikd_utils.data.tasks import TASKS
from sikd_utils.stats import gate_by_seed

COLUMNS = ["task", "teacher_epochs", "seed", "code_commit", "results_commit", "teacher_val", "raw_teacher_val",
           "baseline_val", "teacher_pass", "baseline_clean", "sikd_clean", "control_clean", "baseline_target",
           "sikd_target", "control_target"]


def _git(*args: str, root: Path) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def _show(root: Path, commit: str, path: str) -> str | None:
    try:
        return _git("show", f"{commit}:{path}", root=root)
    except subprocess.CalledProcessError:
        return None


def version_rows(task: str, entry: dict, scores: pd.DataFrame, training: pd.DataFrame, commit: str) -> list[dict]:
    """One committed evidence run of ``task`` as rows of :data:`COLUMNS` (one per seed)."""
    gate = gate_by_seed(training.assign(task=task)).set_index("seed")
    clean = scores[scores["family"] == "clean"].pivot_table(index="seed", columns="method", values="dice")
    target = scores[(scores["family"] == "target") & (scores["severity"] > 0)]
    target = target.pivot_table(index="seed", columns="method", values="dice", aggfunc="mean")
    rows = []
    for seed in sorted(gate.index):
        g = gate.loc[seed]
        row = {"task": task, "teacher_epochs": int(entry.get("teacher_epochs") or entry["epochs"]), "seed": int(seed),
               "code_commit": entry.get("commit"), "results_commit": commit, "teacher_val": g["teacher_val"],
               "raw_teacher_val": g["raw_teacher_val"], "baseline_val": g["baseline_val"],
               "teacher_pass": bool(g["teacher_pass"])}
        for method in ("baseline", "sikd", "control"):
            row[f"{method}_clean"] = clean.at[seed, method] if method in clean else float("nan")
            row[f"{method}_target"] = target.at[seed, method] if method in target else float("nan")
        rows.append(row)
    return rows


def history(root: Path, results: str = "book/results") -> pd.DataFrame:
    """Every gpu-preset evidence run of every task in the git history of ``root``, one row per seed."""
    rows, seen = [], set()
    for task in TASKS:
        for commit in _git("log", "--format=%h", "--", f"{results}/{task}_training.csv", root=root).split():
            prov, scores, training = (_show(root, commit, f"{results}/{name}") for name in
                                      ("provenance.json", f"{task}.csv", f"{task}_training.csv"))
            if prov is None or scores is None or training is None:
                continue
            entry = json.loads(prov).get("tasks", {}).get(task)
            if not entry or entry.get("preset") != "gpu" or entry.get("run_key") in seen:
                continue  # another scale, or a run already taken from a later commit
            seen.add(entry.get("run_key"))
            rows += version_rows(task, entry, pd.read_csv(io.StringIO(scores)), pd.read_csv(io.StringIO(training)),
                                 commit)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["task", "teacher_epochs", "seed"], key=lambda c: c.map(list(TASKS).index)
                             if c.name == "task" else c, kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="book/results/teacher_length_runs.csv")
    args = parser.parse_args()
    root = Path(_git("rev-parse", "--show-toplevel", root=Path.cwd()).strip())
    table = history(root)
    table.to_csv(args.out, index=False)
    print(f"{len(table)} rows ({table.groupby(['task', 'teacher_epochs']).ngroups} runs) written to {args.out}")


if __name__ == "__main__":
    main()
