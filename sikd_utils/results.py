"""Where the book's committed results are, wherever a notebook runs: the one place that looks for them.

The results the book renders (``book/results/``, with ``ablations/``) are files of the repository, not of
the package, so a notebook opened alone -- on Colab, with ``sikd_utils`` installed from the release --
has no ``../book/results`` next to it. They therefore travel twice: in a clone, beside the package; and in
the release wheel, as package data under ``sikd_utils/_book/results/`` (``setup.py`` copies them in at
build time). :func:`locate` returns the first copy it finds, in this order:

1. ``book/results`` of the clone the imported package sits in (``pip install -e``, ``PYTHONPATH``);
2. the copy shipped inside the installed package (a wheel, Colab);
3. ``book/results`` of a clone that the working folder lies in (a notebook run inside a clone whose
   package was installed from elsewhere).

A folder counts when it holds ``provenance.json`` (what every results folder is written with). Where none
is found, :class:`ResultsNotFound` lists the places looked at and the one-line remedy.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._project import TAG, URL

__all__ = ["ResultsNotFound", "SHIPPED", "candidates", "find_results", "locate"]

#: the folder inside the installed package that holds the shipped copy of ``book/results`` (its last part is
#: ``results`` as in a clone, so what a notebook prints of the folder's name reads the same in both)
SHIPPED = "_book/results"
_PACKAGE = Path(__file__).resolve().parent
_MARKER = "provenance.json"


class ResultsNotFound(FileNotFoundError):
    """No copy of the committed results was found; the message says where it looked and what to do."""


def candidates(cwd: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """``(what, folder)`` for every place :func:`locate` looks, in order (see the module docstring)."""
    from .install import find_checkout  # standard library only, so cheap to import

    places = [("the clone the package was imported from", _PACKAGE.parent / "book" / "results"),
              ("the copy shipped with the installed package", _PACKAGE / SHIPPED)]
    clone = find_checkout(cwd if cwd is not None else os.getcwd())
    if clone is not None:
        places.append(("the clone the working folder lies in", clone / "book" / "results"))
    return places


def find_results(cwd: str | os.PathLike | None = None) -> Path | None:
    """The first folder of :func:`candidates` that holds results (``provenance.json``), else None."""
    for _, folder in candidates(cwd):
        if (folder / _MARKER).is_file():
            return folder
    return None


def locate(path: str | os.PathLike | None = None, *, ablations: bool = False,
           cwd: str | os.PathLike | None = None) -> Path:
    """The committed results folder (``ablations=True``: its ``ablations/``), or ``path`` when given.

    A notebook's ``results_dir = None`` means "the committed results": pass it straight through. An
    explicit ``path`` is used as it is (an empty folder is a legitimate "nothing yet"), but must exist.
    Raises :class:`ResultsNotFound` naming every place looked at and the remedy.
    """
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ResultsNotFound(f"results folder {folder} does not exist (it was passed as results_dir); "
                                  "pass a folder that holds provenance.json, or None for the book's committed results")
        return folder
    root = find_results(cwd)
    if root is not None:
        return root / "ablations" if ablations else root
    looked = "; ".join(f"{what}: {folder}" for what, folder in candidates(cwd))
    raise ResultsNotFound(
        f"cannot find the book's committed results (a folder with {_MARKER}). Looked in {looked}. "
        f"Remedy: pip install \"sikd-utils @ git+{URL}@{TAG}\" (the release ships them), or clone {URL} "
        "and open the notebooks from its notebooks/ folder, or pass results_dir=\"<folder>\".")


def evidence_rerun_cost(settings, provenance: dict | None = None, cuda: bool | None = None) -> list[str]:
    """What rerunning the evidence with ``settings`` (a ``ReproduceSettings``) would train, as lines to print
    before anything starts: per task the networks and epochs, and -- where the committed ``provenance`` was
    made at the same preset and lengths -- the GPU time that run took, scaled to the seeds asked for.

    Epochs are counted, not timed here: an epoch's seconds depend on the task's cases and the device.
    """
    from .reproduce import ROLES

    provenance = (provenance or {}).get("tasks", {})
    lines, epochs_total, minutes_total, timed = [], 0, 0.0, 0
    for task in settings.tasks:
        config = settings.config(task)
        seeds = list(config.seeds)
        per_seed = {role: config.train_config(role, 0).epochs for role in ROLES}
        epochs = len(seeds) * sum(per_seed.values())
        epochs_total += epochs
        line = (f"{task}: {len(seeds)} seed(s) x ({', '.join(f'{r} {e}' for r, e in per_seed.items())} epochs) = "
                f"{epochs} epochs at {config.image_size} px, width {config.base_channels}")
        made = provenance.get(task, {})
        same = (made.get("preset") == settings.preset and made.get("epochs") == config.epochs
                and made.get("teacher_epochs") == (config.teacher_epochs or config.epochs) and made.get("seeds"))
        if same and made.get("wall_seconds"):
            minutes = made["wall_seconds"] / 60 * len(seeds) / len(made["seeds"])
            minutes_total, timed = minutes_total + minutes, timed + 1
            line += f"; the committed run took ~{minutes:.0f} GPU-minutes on {made.get('device', 'a GPU')} (summed over jobs)"
        lines.append(line)
    total = f"in all: {epochs_total} epochs of training, plus testing every network on every shift family and severity"
    if timed:
        total += f"; ~{minutes_total / 60:.1f} GPU-hours for the {timed} task(s) timed by the committed run"
    lines.append(total)
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        lines.append("no CUDA GPU here: on a CPU each epoch takes many times longer than the GPU times above")
    limit = getattr(settings, "max_minutes", None)
    lines.append(f"a rerun stops cleanly after {limit:g} minutes; running it again continues where it stopped"
                 if limit else "a rerun without max_minutes runs until everything is trained")
    return lines
