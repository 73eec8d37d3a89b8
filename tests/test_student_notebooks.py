"""`make student-notebooks`: copies without solutions. That the copies still run in fast mode is checked
by tests/test_notebooks.py, which executes the student copies, not the originals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from student_notebooks import PLACEHOLDER, is_solution, write_copies  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _solution_lines(nb) -> list[str]:
    """Distinctive lines of a notebook's solutions (the cells tagged ``solution``)."""
    texts = [c.source for c in nb.cells if is_solution(c)]
    return [line.strip() for t in texts for line in t.splitlines()
            if len(line.strip()) > 25 and not line.strip().startswith("<")]


def test_copies_hold_no_solution_text_and_keep_everything_else(tmp_path):
    written = write_copies(ROOT / "notebooks", tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for original_path, copy_path in zip(NOTEBOOKS, written):
        original = nbformat.read(original_path, as_version=4)
        copy = nbformat.read(copy_path, as_version=4)
        nbformat.validate(copy)
        lines = _solution_lines(original)
        assert lines, f"{original_path.name} has no solutions to remove (the check below could not fail)"
        text = "\n".join(c.source for c in copy.cells)
        left = [line for line in lines if line in text]
        assert not left, f"{copy_path.name} still shows solution text: {left[:2]}"
        assert not any(is_solution(c) for c in copy.cells) and PLACEHOLDER in text
        # every other cell is kept, code untouched
        assert [c.source for c in copy.cells if c.cell_type == "code"] == \
               [c.source for c in original.cells if c.cell_type == "code" and not is_solution(c)]


def test_make_target_writes_the_copies_into_the_build_folder():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^student-notebooks:", makefile, re.M)
    assert "_build/student-notebooks" in makefile  # a build folder: ignored, never committed
    ignored = subprocess.run(["git", "check-ignore", "-q", "_build/student-notebooks/x.ipynb"], cwd=ROOT)
    assert ignored.returncode == 0
