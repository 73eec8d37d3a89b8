"""Take what one GPU piece finished into this checkout's ``book/results/``, and nothing else.

``scripts/gpu_piece.sh`` packs the whole ``book/results/`` of the GPU machine into ``piece.tgz``: the
files sent from here and what the piece finished. This copies only the latter:

* a finished evidence task — its ``<task>.csv`` and ``<task>_training.csv``, and its entry of
  ``provenance.json`` (the other tasks' entries stay as they are here);
* the same for an ablation task under ``ablations/`` gathered in full (every method on every seed of its
  preset); a gather of the chosen variants or seeds only (``ablate --variants``/``--seeds``) is left, so it
  cannot replace a fuller file here — its part files carry the results;
* the ablations' part files (``ablations/parts/…``) that are new here.

A piece made from an older tree cannot undo newer results: a task is taken only when its run is newer than
ours (provenance ``date``), and a part file we have is never replaced. Nothing is copied unless every file
that would be passes the results schema (:mod:`sikd_utils.results_schema`, the commit included): a truncated
or doctored piece is refused whole, naming the file and the rule.

    python scripts/take_piece.py OUT/piece.tgz [--results-dir book/results] [--dry-run]

It prints what it took; then commit, and after a finished evidence task rerun
``scripts/teacher_length_runs.py`` (it reads git history) and commit again.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from sikd_utils.ablations import not_gathered
from sikd_utils.results_schema import (ResultsFileError, check_entry, check_task_files, read_checked_csv,
                                       read_provenance, unknown_commits)

_PREFIX = Path("book/results")


def _entries(path: Path) -> dict:
    return read_provenance(path, required=False)["tasks"]


def _known_commit(entry: dict, source, here: Path) -> None:
    unknown = unknown_commits([entry["commit"]], here)
    if unknown:
        raise ResultsFileError(f"{source}: commit {entry['commit']!r} is not in this repository's history; fetch "
                               "or push that commit first, so the results name code anyone can find")


def _take_tasks(piece: Path, here: Path, ablations: bool = False) -> tuple[list[str], list]:
    """The tasks to take — those whose CSVs differ from ours (a run finished in the piece), each checked — as
    ``(lines, chosen)``; :func:`_copy_tasks` then copies them and puts each provenance entry in place of ours
    (an entry's hand-written notes, e.g. the list of pieces, belong to the run it replaces).
    ``ablations``: leave a task that is not gathered in full (:func:`sikd_utils.ablations.not_gathered`)."""
    piece_provenance = read_provenance(piece / "provenance.json", required=False)
    theirs, ours = piece_provenance["tasks"], _entries(here / "provenance.json")
    taken, chosen = [], []
    for task, entry in theirs.items():
        files = [piece / f"{task}.csv", piece / f"{task}_training.csv"]
        if not all(f.exists() for f in files) or all(
                (here / f.name).exists() and filecmp.cmp(f, here / f.name, shallow=False) for f in files):
            continue
        methods, seeds = not_gathered(entry) if ablations else ([], [])
        if methods or seeds:
            taken.append(f"left: {task}.csv (gathered from the chosen part only: it lacks "
                         f"{len(methods)} method(s) and seed(s) {seeds or 'none'}; the part files carry the results)")
            continue
        if task in ours and str(entry.get("date", "")) <= str(ours[task].get("date", "")):
            taken.append(f"kept ours: {task} (the piece's run, {entry.get('date')}, is not newer than ours, "
                         f"{ours[task].get('date')})")
            continue
        check_task_files(piece, task, "ablation_training" if ablations else "training", provenance=piece_provenance)
        _known_commit(entry, f"the piece's {task} entry", here)
        taken.append(f"took {here / task}.csv, {here / task}_training.csv and its provenance entry "
                     f"(commit {entry.get('commit')}, {entry.get('date')})")
        chosen.append((task, entry, files))
    return taken, chosen


def _copy_tasks(piece_provenance: dict, here: Path, chosen: list) -> None:
    for task, entry, files in chosen:
        for source in files:
            shutil.copyfile(source, here / source.name)  # copyfile: our permissions, not the tarball's
        data = json.loads((here / "provenance.json").read_text()) if (here / "provenance.json").exists() else {}
        data.setdefault("tasks", {})[task] = entry
        if "schema" in piece_provenance:
            data["schema"] = piece_provenance["schema"]
        (here / "provenance.json").write_text(json.dumps(data, indent=2) + "\n")


def _take_parts(piece: Path, here: Path) -> tuple[list[str], list]:
    """Copy the part files that we do not have. A part is written once, when its method finishes; one that
    differs from ours comes from testing the same networks again, which on the GPU is not bit-exact (the
    fourth decimal of a Dice can move), so ours, the first, stays."""
    taken, chosen = [], []
    for source in sorted(p for p in piece.rglob("*") if p.is_file()):
        target = here / source.relative_to(piece)
        if target.exists():
            if not filecmp.cmp(source, target, shallow=False):
                taken.append(f"kept ours: {target} (the piece's differs)")
            continue
        _check_part(source, here)
        taken.append(f"took {target}")
        chosen.append((source, target))
    return taken, chosen


def _check_part(source: Path, here: Path) -> None:
    """A part file as ablate writes it: ``<method>.scores.csv``, ``.training.csv`` (one seed), ``.provenance.json``
    or ``.imported.json`` (naming a known commit), ``.history.csv``."""
    seed = source.parent.name
    seeds = [int(seed[len("seed"):])] if seed.startswith("seed") and seed[len("seed"):].isdigit() else None
    if source.name.endswith(".scores.csv"):
        read_checked_csv(source, "scores", seeds=seeds)
    elif source.name.endswith(".training.csv"):
        read_checked_csv(source, "ablation_training", seeds=seeds)
    elif source.name.endswith((".provenance.json", ".imported.json")):
        try:
            record = json.loads(source.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ResultsFileError(f"{source}: not valid JSON ({err})") from None
        check_entry(record, source, fields=("commit",))
        _known_commit(record, source, here)


def take_piece(tarball: str | Path, results_dir: str | Path = _PREFIX, dry_run: bool = False) -> list[str]:
    """What of ``tarball`` (a ``gpu_piece.sh`` piece) was taken into ``results_dir`` ("took …") or left
    because ours is newer or first ("kept ours: …"), one line per item."""
    here = Path(results_dir)
    if not Path(tarball).is_file():
        raise ValueError(f"no piece at {tarball}: expected the piece.tgz that scripts/gpu_piece.sh wrote")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ValueError(f"{tarball} is not a readable tar archive (truncated, or not a piece): {err}") from None
        piece = Path(tmp) / _PREFIX
        if not piece.is_dir():
            raise ValueError(f"{tarball} holds no {_PREFIX}/: not a piece of scripts/gpu_piece.sh")
        # every file is checked before anything is copied: a bad piece is refused whole
        taken, tasks = _take_tasks(piece, here)
        ablation_tasks, parts = [], []
        if (piece / "ablations").is_dir():
            more, ablation_tasks = _take_tasks(piece / "ablations", here / "ablations", ablations=True)
            taken += more
            if (piece / "ablations" / "parts").is_dir():
                more, parts = _take_parts(piece / "ablations" / "parts", here / "ablations" / "parts")
                taken += more
        if not dry_run:
            _copy_tasks(read_provenance(piece / "provenance.json", required=False), here, tasks)
            if ablation_tasks:
                _copy_tasks(read_provenance(piece / "ablations" / "provenance.json"), here / "ablations", ablation_tasks)
            for source, target in parts:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball")
    parser.add_argument("--results-dir", default=str(_PREFIX))
    parser.add_argument("--dry-run", action="store_true", help="say what would be taken, copy nothing")
    args = parser.parse_args()
    try:
        taken = take_piece(args.tarball, args.results_dir, args.dry_run)
    except ValueError as err:  # ResultsFileError included: one line, nothing copied
        raise SystemExit(f"take_piece: error: {err}; nothing was taken") from None
    for line in taken:
        print(f"(dry run) {line}" if args.dry_run else line)
    took = sum(line.startswith("took") for line in taken)
    print(f"{took} item(s) taken{' (dry run: nothing copied)' if args.dry_run else ''}; nothing else of the piece")


if __name__ == "__main__":
    main()
