"""Write the repository URL and version of sikd_utils/_project.py into every copy of them.

Copies: each notebook's Colab badge (first cell) and install cell (second cell), and the repository
URL in _config.yml. Only those lines change, so other edits to the notebooks merge cleanly.

    python scripts/sync_notebooks.py           # rewrite what disagrees (make sync-notebooks)
    python scripts/sync_notebooks.py --check   # list what disagrees, exit status 1 if anything does
"""

from __future__ import annotations

import argparse
import re
import runpy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(https://colab\.research\.google\.com/github/[^)]*\)")
CONFIG_URL = re.compile(r"^(\s+url:\s*)https://github\.com/\S+", re.M)

INSTALL_CELL = '''\
# Set-up: installs the book's package where it is missing -- from this clone, else the tagged release
# (Colab) -- and does nothing where it is installed. It never upgrades torch, numpy or ipywidgets (it
# stops and names any that is older than the book needs), shows pip's own reason if pip fails, and
# asks for a restart only if a library already imported changed version (sikd_utils/install.py).
# Written by scripts/sync_notebooks.py from sikd_utils/_project.py: edit those, not this cell.
REPOSITORY, VERSION = "{repository}", "{version}"
import importlib.util, pathlib, urllib.request
if importlib.util.find_spec("sikd_utils") is None:
    local = pathlib.Path("../sikd_utils/install.py")
    url = f"https://raw.githubusercontent.com/{{REPOSITORY}}/v{{VERSION}}/sikd_utils/install.py"
    try:
        code = local.read_text() if local.is_file() else urllib.request.urlopen(url, timeout=60).read()
    except OSError as err:
        raise RuntimeError(f"cannot fetch the book's installer from {{url}} ({{err}}): is {{REPOSITORY}} "
                           f"published with tag v{{VERSION}}? Else clone it and open the notebooks there") from err
    exec(compile(code, "sikd_utils/install.py", "exec"), installer := {{"__name__": "sikd_install"}})
    installer["ensure"](REPOSITORY, VERSION)'''


def project(root: Path = ROOT) -> dict:
    """URL, VERSION, REPOSITORY and TAG as sikd_utils/_project.py defines them (read without importing)."""
    values = runpy.run_path(str(root / "sikd_utils" / "_project.py"))
    return {k: values[k] for k in ("URL", "VERSION", "REPOSITORY", "TAG")}


def badge(name: str, facts: dict) -> str:
    """The Colab badge of notebook ``name``: it opens the notebook of the release the cell installs."""
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{facts['REPOSITORY']}/blob/{facts['TAG']}/notebooks/{name})")


def install_cell(facts: dict) -> str:
    """The source of every notebook's install cell."""
    return INSTALL_CELL.format(repository=facts["REPOSITORY"], version=facts["VERSION"])


def sync(root: Path = ROOT, write: bool = True) -> list[str]:
    """Paths (relative to ``root``) whose copies disagree with _project.py; rewritten when ``write``."""
    facts = project(root)
    stale = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = nb.cells
        if len(cells) < 2 or cells[0].cell_type != "markdown" or cells[1].cell_type != "code":
            raise ValueError(f"{path}: expected a markdown title cell and a code install cell first")
        if not BADGE.search(cells[0].source):
            raise ValueError(f"{path}: the first cell has no Colab badge ([![Open In Colab](...)](...))")
        title = BADGE.sub(lambda _: badge(path.name, facts), cells[0].source)
        cell = install_cell(facts)
        if title != cells[0].source or cell != cells[1].source:
            stale.append(str(path.relative_to(root)))
            if write:
                cells[0].source, cells[1].source = title, cell
                nbformat.write(nb, path)
    config = root / "_config.yml"
    text = config.read_text(encoding="utf-8")
    if not CONFIG_URL.search(text):
        raise ValueError(f"{config}: no 'url: https://github.com/...' line under repository:")
    synced = CONFIG_URL.sub(lambda m: m.group(1) + facts["URL"], text)
    if synced != text:
        stale.append("_config.yml")
        if write:
            config.write_text(synced, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report what disagrees (exit status 1)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = sync(args.root, write=not args.check)
    for name in stale:
        print(f"{'out of date' if args.check else 'rewritten'}: {name}")
    if args.check and stale:
        print("run `make sync-notebooks` (python scripts/sync_notebooks.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
