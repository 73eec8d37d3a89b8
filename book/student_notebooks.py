"""Student copies of the notebooks: every cell tagged ``solution`` removed, outputs cleared.
``make student-notebooks`` runs it.

    python book/student_notebooks.py [notebooks/] [_build/student-notebooks/]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_TAG = "solution"
PLACEHOLDER = "*Solutions are left out of this copy: your teacher has them.*"


def is_solution(cell) -> bool:
    """True for a cell holding exercise solutions (tagged ``solution``)."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_copy(nb):
    """A copy of notebook ``nb`` without its solutions and outputs; each solution cell leaves a note."""
    nb = nbformat.from_dict(nb)  # deep copy
    cells = []
    for cell in nb.cells:
        if is_solution(cell):
            cells.append(nbformat.v4.new_markdown_cell(PLACEHOLDER))
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    nb.cells = cells
    return nb


def write_copies(source: Path = ROOT / "notebooks", target: Path = ROOT / "_build" / "student-notebooks") -> list[Path]:
    """Write the student copy of every notebook in ``source`` into ``target``."""
    paths = sorted(Path(source).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no notebooks in {source}")
    Path(target).mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        copy = student_copy(nbformat.read(path, as_version=4))
        out = Path(target) / path.name
        nbformat.write(copy, out)
        written.append(out)
    return written


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:3]]
    for out in write_copies(*args):
        print(f"wrote {out}")
