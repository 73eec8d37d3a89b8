"""Fast checks of the book's configuration (the build itself runs in `make book`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_config_matches_jupyter_book_schema():
    """Jupyter Book only *prints* schema errors (the build still passes), so check them here."""
    config = pytest.importorskip("jupyter_book.config")
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in config.get_validator().iter_errors(_config())]
    assert not errors, "\n".join(errors)


def test_failing_notebooks_fail_the_build():
    execute = _config()["execute"]
    assert execute["allow_errors"] is False
    assert execute["raise_on_error"] is True
    assert execute["execute_notebooks"] == "cache"
    assert execute["timeout"] >= 1800


def test_repository_url_is_written_once():
    """The repository URL lives in sikd_utils/_project.py; _config.yml and the notebooks (which Colab
    opens standalone) carry copies that scripts/sync_notebooks.py writes and tests/test_install.py checks."""
    from sikd_utils._project import URL

    url = _config()["repository"]["url"]
    assert url == URL, "run `make sync-notebooks` after changing sikd_utils/_project.py"
    try:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    holders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".md", ".yml", ".yaml", ".py", ".ipynb", ".bib", ".toml", ".txt", ".cfg"} and path.is_file():
            if url in path.read_text(encoding="utf-8", errors="replace"):
                holders.append(name)
    # notebooks must carry it too (Colab badge, install cell); tests/test_notebooks.py checks they match
    others = [h for h in holders if not (h.startswith("notebooks/") and h.endswith(".ipynb"))]
    assert others == ["_config.yml", "sikd_utils/_project.py"], (
        f"{url} written in {others}; keep it in sikd_utils/_project.py (copied into _config.yml)")


def test_the_papers_bibtex_entry_has_one_source():
    """book/references.bib holds the paper's BibTeX entry. The intro page reads it (the ``bib-entry``
    directive of book/_ext/sikd_book.py); sikd_utils.paper.BIBTEX, which notebook 00 prints on Colab where
    there is no book/ folder, must be the same text; no other file writes the entry out."""
    import importlib.util

    from sikd_utils.paper import BIBTEX, CITATION

    spec = importlib.util.spec_from_file_location("sikd_book", ROOT / "book" / "_ext" / "sikd_book.py")
    book_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book_ext)
    bibfiles = _config()["bibtex_bibfiles"]
    assert bibfiles == ["book/references.bib"]
    entry = book_ext.bib_entry((ROOT / bibfiles[0]).read_text(encoding="utf-8"), "dong2025sikd")
    assert entry is not None and "doi" in entry
    assert BIBTEX == entry, "sikd_utils.paper.BIBTEX differs from book/references.bib: copy the entry from there"
    doi = re.search(r"doi\s*=\s*\{([^}]*)\}", entry).group(1)
    assert f"doi:{doi}" in CITATION
    assert "{bib-entry} dong2025sikd" in (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    try:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    holders = [name for name in tracked if (ROOT / name).is_file() and (ROOT / name).suffix in {".md", ".py", ".ipynb", ".bib", ".txt"}
               and re.search(r"@\w+\{dong2025sikd,", (ROOT / name).read_text(encoding="utf-8", errors="replace"))]
    assert sorted(holders) == ["book/references.bib", "sikd_utils/paper.py"], (
        f"the paper's BibTeX entry is written out in {holders}; read book/references.bib instead")


def test_dated_history_lives_in_the_run_log():
    """The package, the scripts and the README describe the code; what happened on a given day (sessions,
    timings, incidents) goes to book/results/RUNLOG.md, which the book builds as a page under the results.
    The README stays the newcomer's short path, with the rest of the GPU story in book/gpu.md."""
    date = re.compile(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]")
    files = [ROOT / "README.md", *(ROOT / "sikd_utils").rglob("*.py"), *(ROOT / "scripts").glob("*.*")]
    dated = [str(p.relative_to(ROOT)) for p in files if date.search(p.read_text(encoding="utf-8", errors="replace"))]
    assert not dated, f"dates in {dated}: move the history to book/results/RUNLOG.md"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 80
    assert "book/gpu.md" in readme and "make book" in readme and "make test" in readme
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert "file: book/results/RUNLOG" in toc and "file: book/gpu" in toc
    assert "results/RUNLOG" in (ROOT / "book" / "results.md").read_text(encoding="utf-8")


def test_the_api_page_documents_every_public_module():
    import re

    documented = set(re.findall(r"^\.\. automodule:: sikd_utils\.(\w+)$", (ROOT / "book" / "api.md").read_text(), flags=re.M))
    modules = {p.stem for p in (ROOT / "sikd_utils").glob("*.py") if not p.stem.startswith("_")}
    assert modules <= documented, f"book/api.md lacks {sorted(modules - documented)}"


def test_api_docstrings_build_without_warnings(tmp_path):
    """The API page's docstrings render under the book's -W -n rules (a stray ``|x|`` or a bad indent is a
    Sphinx error that would otherwise surface only after a 15-minute `make book`)."""
    pytest.importorskip("sphinx")
    import re
    import sys

    modules = re.findall(r"^\.\. automodule:: (\S+)", (ROOT / "book" / "api.md").read_text(), flags=re.M)
    assert modules, "book/api.md documents no module"
    sphinx_config = _config()["sphinx"]["config"]
    keep = {k: v for k, v in sphinx_config.items() if k.startswith(("autodoc_", "napoleon_", "nitpick_"))}
    (tmp_path / "conf.py").write_text(
        "extensions = ['sphinx.ext.autodoc', 'sphinx.ext.napoleon']\n"
        + "".join(f"{key} = {value!r}\n" for key, value in keep.items())
    )
    (tmp_path / "index.rst").write_text(
        "API\n===\n\n" + "".join(f".. automodule:: {m}\n   :members:\n\n" for m in modules)
    )
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "dummy",
         str(tmp_path), str(tmp_path / "_out")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_differences_table_reads_the_preset():
    """The results page's table of differences from the paper comes from presets.py, not typed text."""
    from sikd_utils import paper
    from sikd_utils.presets import PRESETS

    table = paper.differences("gpu").set_index("What")
    column = "This book (gpu preset)"
    assert table.loc["Image size", column] == f"{PRESETS['gpu']['image_size']} px"
    assert table.loc["Batch size", column] == str(PRESETS["gpu"]["batch_size"])
    assert str(PRESETS["gpu"]["n_images"][2]) in table.loc["Test set size", column]
    assert table.loc["Image size", "Paper"] == "256 px"
    assert "{paper-differences} gpu" in (Path(__file__).resolve().parents[1] / "book" / "results.md").read_text()
