"""What a results file must hold: checked when it is written, taken from a GPU piece and read by the book.

The book's numbers are computed from the CSV and JSON files under ``book/results/``. A file that was
truncated, scaled (Dice × 100), duplicated, or written by another run would change a rendered verdict
without a word, so every reader and writer goes through these checks, and a file that breaks one is a
:class:`ResultsFileError` naming the file, the row and the rule.

The rules, per file kind (:data:`SCHEMAS`): the columns a file must have (others may follow), each value's
type and range, one row per key, and completeness — every method on every seed of the run's provenance
entry, each measured on the same test sets. ``provenance.json`` must parse, hold a ``tasks`` mapping whose
entries name a preset, a run key, distinct integer seeds and a commit; in a git checkout that commit must
be in the repository's history (a commit nobody can find cannot back a number).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ResultsFileError", "Column", "Schema", "SCHEMAS", "check_frame", "read_checked_csv", "read_provenance",
           "check_entry", "check_task_files", "unknown_commits"]


class ResultsFileError(ValueError):
    """A results file breaks its schema; the message names the file, the row and the rule."""


@dataclass(frozen=True)
class Column:
    """One column a file must have: its kind ("int", "float" or "str"), bounds, and whether it may be empty."""

    name: str
    kind: str  # "int", "float" or "str"
    low: float | None = None
    high: float | None = None
    nullable: bool = False


@dataclass(frozen=True)
class Schema:
    """A file kind: its columns, the key that names one row, and the column every seed must share."""

    kind: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    per_seed: str | None = None  # the column whose values every seed must share (methods, roles)


_SCORE_COLUMNS = (Column("task", "str"), Column("seed", "int", 0), Column("method", "str"),
                  Column("family", "str"), Column("severity", "float", 0), Column("dice", "float", 0, 1),
                  Column("hd95_mm", "float", 0, nullable=True), Column("teacher_gate", "str", nullable=True),
                  Column("n_cases", "int", 1))
_TRAINING_COLUMNS = (Column("task", "str"), Column("seed", "int", 0), Column("role", "str"),
                     Column("best_epoch", "int", 0), Column("best_val_dice", "float", 0, 1, nullable=True),
                     Column("validated_on", "str", nullable=True), Column("epochs", "int", 1),
                     Column("steps", "int", 0), Column("train_seconds", "float", 0),
                     Column("gate", "str", nullable=True))

#: the schema of each results file kind, by name
SCHEMAS: dict[str, Schema] = {
    # <task>.csv of the evidence run, ablations/<task>.csv and the ablations' <method>.scores.csv parts
    "scores": Schema("scores", _SCORE_COLUMNS, ("task", "seed", "method", "family", "severity"), "method"),
    # <task>_training.csv of the evidence run
    "training": Schema("training", _TRAINING_COLUMNS, ("task", "seed", "role"), "role"),
    # ablations/<task>_training.csv and the <method>.training.csv parts
    "ablation_training": Schema("ablation_training", (*_TRAINING_COLUMNS[:2], Column("method", "str"),
                                                      *_TRAINING_COLUMNS[2:-1], Column("run_key", "str")),
                                ("task", "seed", "method", "role"), "method"),
}


def _fail(source, rule: str, row: int | None = None) -> ResultsFileError:
    where = f"{source}, row {row + 1} (line {row + 2})" if row is not None else f"{source}"
    return ResultsFileError(f"{where}: {rule}")


def _plain(value):
    """A numpy scalar as the Python value it holds, so messages read ``seed=0``, not ``seed=np.int64(0)``."""
    return value.item() if isinstance(value, np.generic) else value


def _check_column(frame, column: Column, source):
    import pandas as pd

    values = frame[column.name]
    missing = values.isna() | (values.astype(str).str.strip() == "") if column.kind == "str" else values.isna()
    if not column.nullable and missing.any():
        row = int(missing.to_numpy().nonzero()[0][0])
        raise _fail(source, f"column {column.name!r} is empty; every row needs a value", row)
    if column.kind == "str":
        return
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & ~missing
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise _fail(source, f"column {column.name!r} holds {values.iloc[row]!r}, expected a number", row)
    finite = numbers[~missing]
    infinite = pd.Series(~np.isfinite(finite.to_numpy(dtype=float)), index=finite.index)
    if infinite.any():
        row = int(finite.index[infinite.to_numpy()][0])
        raise _fail(source, f"column {column.name!r} holds {values.loc[row]!r}, expected a finite number", row)
    if column.kind == "int":
        fractional = finite != finite.round()
        if fractional.any():
            row = int(finite.index[fractional.to_numpy()][0])
            raise _fail(source, f"column {column.name!r} holds {values.loc[row]!r}, expected an integer", row)
    for bound, outside, word in ((column.low, finite < (column.low or 0), "at least"),
                                 (column.high, finite > (column.high or 0), "at most")):
        if bound is not None and outside.any():
            row = int(finite.index[outside.to_numpy()][0])
            raise _fail(source, f"column {column.name!r} holds {values.loc[row]!r}, expected a value {word} "
                                f"{bound:g}", row)


def check_frame(frame, schema: str | Schema, source, task: str | None = None, seeds=None, per_seed=None):
    """``frame`` if it keeps ``schema``'s rules, else a :class:`ResultsFileError` naming ``source``.

    ``task``: every row's task; ``seeds``: exactly the seeds the file must hold; ``per_seed``: exactly the
    methods (or roles) every seed must hold. Each ``(seed, method)`` must also be measured on the same test
    sets (score files), so a file cut short, or missing a seed or a method, is refused."""
    schema = SCHEMAS[schema] if isinstance(schema, str) else schema
    absent = [c.name for c in schema.columns if c.name not in frame.columns]
    if absent:
        raise _fail(source, f"missing column(s) {absent}; a {schema.kind} file has "
                            f"{[c.name for c in schema.columns]}")
    if frame.empty:
        raise _fail(source, "no rows; a results file holds at least one")
    frame = frame.reset_index(drop=True)
    for column in schema.columns:
        _check_column(frame, column, source)
    if task is not None:
        other = frame["task"] != task
        if other.any():
            row = int(other.to_numpy().nonzero()[0][0])
            raise _fail(source, f"task {frame['task'].iloc[row]!r} in a file of task {task!r}", row)
    duplicated = frame.duplicated(list(schema.key))
    if duplicated.any():
        row = int(duplicated.to_numpy().nonzero()[0][0])
        key = ", ".join(f"{k}={_plain(frame[k].iloc[row])!r}" for k in schema.key)
        raise _fail(source, f"a second row for ({key}); a file has one row per {schema.key}", row)
    have_seeds = sorted(int(s) for s in frame["seed"].unique())
    if seeds is not None and have_seeds != sorted(int(s) for s in seeds):
        raise _fail(source, f"holds seeds {have_seeds}, its provenance says {sorted(int(s) for s in seeds)}")
    if schema.per_seed:
        groups = {int(seed): set(group[schema.per_seed]) for seed, group in frame.groupby("seed")}
        wanted = set(per_seed) if per_seed is not None else set().union(*groups.values())
        for seed, found in groups.items():
            if found != wanted:
                lacking, extra = sorted(wanted - found), sorted(found - wanted)
                raise _fail(source, f"seed {seed} lacks {schema.per_seed}(s) {lacking}" if lacking else
                            f"seed {seed} has unexpected {schema.per_seed}(s) {extra}")
    if schema.kind == "scores":
        tests = {name: set(zip(group["family"], group["severity"].astype(float)))
                 for name, group in frame.groupby(["seed", "method"])}
        everything = set().union(*tests.values())
        for (seed, method), found in tests.items():
            if found != everything:
                lacking = sorted(everything - found)[:3]
                raise _fail(source, f"seed {seed}, method {method!r} lacks test set(s) "
                                    f"{[f'{f}@{s:g}' for f, s in lacking]}{' …' if len(everything - found) > 3 else ''}"
                                    "; every (seed, method) is measured on the same test sets")
    return frame


def read_checked_csv(path, schema: str | Schema, **rules):
    """Read ``path`` and :func:`check_frame` it; an unreadable file is a :class:`ResultsFileError` too."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(f"{path}: no such results file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ResultsFileError(f"{path}: not a readable CSV file ({str(err).strip() or type(err).__name__})") from None
    return check_frame(frame, schema, path, **rules)


def read_provenance(path, required: bool = True) -> dict:
    """``provenance.json`` as a dict with a ``tasks`` mapping; ``{"tasks": {}}`` when absent and not
    ``required``. Bad JSON or a wrong structure is a :class:`ResultsFileError`."""
    path = Path(path)
    if not path.exists():
        if required:
            raise ResultsFileError(f"{path}: no such provenance file")
        return {"tasks": {}}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsFileError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks", {}), dict):
        raise ResultsFileError(f"{path}: expected an object with a 'tasks' mapping of task -> entry")
    data.setdefault("tasks", {})
    for task, entry in data["tasks"].items():
        check_entry(entry, f"{path}, entry {task!r}")
    return data


def check_entry(entry, source, fields: tuple[str, ...] = ("commit", "preset", "run_key", "seeds")) -> dict:
    """A provenance entry with a commit, preset, run key and distinct integer seeds (``fields``)."""
    if not isinstance(entry, dict):
        raise ResultsFileError(f"{source}: expected an object, got {type(entry).__name__}")
    absent = [f for f in fields if f not in entry]
    if absent:
        raise ResultsFileError(f"{source}: missing {absent}; an entry records {list(fields)}")
    for name in ("commit", "preset", "run_key"):
        if name in fields and (not isinstance(entry[name], str) or not entry[name].strip()):
            raise ResultsFileError(f"{source}: {name} is {entry[name]!r}, expected a non-empty string")
    if "commit" in fields:
        commit = entry["commit"].removesuffix("-dirty")
        if commit != "unknown" and not (7 <= len(commit) <= 40 and all(c in "0123456789abcdef" for c in commit)):
            raise ResultsFileError(f"{source}: commit {entry['commit']!r} is not a git commit hash (nor 'unknown')")
    if "seeds" in fields:
        seeds = entry["seeds"]
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
            raise ResultsFileError(f"{source}: seeds {seeds!r}, expected a non-empty list of integers >= 0")
        if len(set(seeds)) != len(seeds):
            raise ResultsFileError(f"{source}: seeds {seeds!r} repeat a seed")
    return entry


def _git_root(folder: Path) -> Path | None:
    for parent in (folder.resolve(), *folder.resolve().parents):
        if (parent / ".git").exists():
            return parent
    return None


def unknown_commits(commits, folder) -> list[str] | None:
    """The ``commits`` that the git repository holding ``folder`` does not know; ``None`` where that cannot be
    asked (no checkout, e.g. an installed release; no git; a shallow clone, whose history is cut)."""
    root = _git_root(Path(folder))
    if root is None:
        return None
    names = [c.removesuffix("-dirty") for c in commits]
    try:
        shallow = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-shallow-repository"],
                                 capture_output=True, text=True, timeout=30)
        if shallow.returncode != 0 or shallow.stdout.strip() == "true":
            return None
        answer = subprocess.run(["git", "-C", str(root), "cat-file", "--batch-check"],
                                input="".join(f"{n}^{{commit}}\n" for n in names),
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    lines = answer.stdout.splitlines()
    return [c for c, line in zip(commits, lines) if line.endswith("missing") or " ambiguous" in line]


def check_task_files(folder, task: str, training_schema: str = "training", methods=None, provenance=None):
    """``(scores, training, entry)`` of one finished task in ``folder``, every rule checked: both CSVs against
    their schemas, the seeds (and, for ablations, the methods) their provenance entry names, and its commit.
    ``provenance``: the already-read provenance dict (read from ``folder`` otherwise)."""
    folder = Path(folder)
    data = provenance if provenance is not None else read_provenance(folder / "provenance.json")
    entry = data["tasks"].get(task)
    if entry is None:
        raise ResultsFileError(f"{folder / 'provenance.json'}: no entry for task {task!r}")
    seeds = entry["seeds"]
    if methods is None and isinstance(entry.get("methods"), dict):
        methods = list(entry["methods"])
    scores = read_checked_csv(folder / f"{task}.csv", "scores", task=task, seeds=seeds, per_seed=methods)
    training = read_checked_csv(folder / f"{task}_training.csv", training_schema, task=task, seeds=seeds,
                                per_seed=methods if training_schema == "ablation_training" else None)
    unknown = unknown_commits([entry["commit"]], folder)
    if unknown:
        raise ResultsFileError(f"{folder / 'provenance.json'}, entry {task!r}: commit {entry['commit']!r} is not in "
                               "this repository's history; results must name the code that made them")
    return scores, training, entry
