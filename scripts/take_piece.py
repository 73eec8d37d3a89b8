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
ours (provenance ``date``), and a part file we have is never replaced.

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

_PREFIX = Path("book/results")


def _entries(path: Path) -> dict:
    return json.loads(path.read_text()).get("tasks", {}) if path.exists() else {}


def _take_tasks(piece: Path, here: Path, dry_run: bool, ablations: bool = False) -> list[str]:
    """Copy each task whose CSVs differ from ours (a run finished in the piece) and put its provenance entry
    in place of ours (an entry's hand-written notes, e.g. the list of pieces, belong to the run it replaces).
    ``ablations``: leave a task that is not gathered in full (:func:`sikd_utils.ablations.not_gathered`)."""
    piece_provenance = json.loads((piece / "provenance.json").read_text()) if (piece / "provenance.json").exists() else {}
    theirs, ours = piece_provenance.get("tasks", {}), _entries(here / "provenance.json")
    taken = []
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
        taken.append(f"took {here / task}.csv, {here / task}_training.csv and its provenance entry "
                     f"(commit {entry.get('commit')}, {entry.get('date')})")
        if dry_run:
            continue
        for source in files:
            shutil.copyfile(source, here / source.name)  # copyfile: our permissions, not the tarball's
        data = json.loads((here / "provenance.json").read_text()) if (here / "provenance.json").exists() else {}
        data.setdefault("tasks", {})[task] = entry
        if "schema" in piece_provenance:
            data["schema"] = piece_provenance["schema"]
        (here / "provenance.json").write_text(json.dumps(data, indent=2) + "\n")
    return taken


def _take_parts(piece: Path, here: Path, dry_run: bool) -> list[str]:
    """Copy the part files that we do not have. A part is written once, when its method finishes; one that
    differs from ours comes from testing the same networks again, which on the GPU is not bit-exact (the
    fourth decimal of a Dice can move), so ours, the first, stays."""
    taken = []
    for source in sorted(p for p in piece.rglob("*") if p.is_file()):
        target = here / source.relative_to(piece)
        if target.exists():
            if not filecmp.cmp(source, target, shallow=False):
                taken.append(f"kept ours: {target} (the piece's differs)")
            continue
        taken.append(f"took {target}")
        if not dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return taken


def take_piece(tarball: str | Path, results_dir: str | Path = _PREFIX, dry_run: bool = False) -> list[str]:
    """What of ``tarball`` (a ``gpu_piece.sh`` piece) was taken into ``results_dir`` ("took …") or left
    because ours is newer or first ("kept ours: …"), one line per item."""
    here = Path(results_dir)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        piece = Path(tmp) / _PREFIX
        if not piece.is_dir():
            raise ValueError(f"{tarball} holds no {_PREFIX}/: not a piece of scripts/gpu_piece.sh")
        taken = _take_tasks(piece, here, dry_run)
        if (piece / "ablations").is_dir():
            taken += _take_tasks(piece / "ablations", here / "ablations", dry_run, ablations=True)
            if (piece / "ablations" / "parts").is_dir():
                taken += _take_parts(piece / "ablations" / "parts", here / "ablations" / "parts", dry_run)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball")
    parser.add_argument("--results-dir", default=str(_PREFIX))
    parser.add_argument("--dry-run", action="store_true", help="say what would be taken, copy nothing")
    args = parser.parse_args()
    taken = take_piece(args.tarball, args.results_dir, args.dry_run)
    for line in taken:
        print(f"(dry run) {line}" if args.dry_run else line)
    took = sum(line.startswith("took") for line in taken)
    print(f"{took} item(s) taken{' (dry run: nothing copied)' if args.dry_run else ''}; nothing else of the piece")


if __name__ == "__main__":
    main()
