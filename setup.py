"""Ships the committed results (``book/results/``) inside the release wheel.

Everything else is in ``pyproject.toml``. The results are repository files, not package files, yet a
notebook run alone (Colab, installed from the release) must render them: ``build_py`` copies them into
the built package as ``sikd_utils/_book/results/``, where ``sikd_utils.results.locate`` finds them. An
editable install needs no copy (``locate`` finds ``book/results`` beside the package).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESULTS = Path(__file__).resolve().parent / "book" / "results"
SHIPPED = "_book/results"  # sikd_utils.results.SHIPPED


class BuildWithResults(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not (RESULTS / "provenance.json").is_file():
            raise SystemExit(f"setup.py: {RESULTS} has no provenance.json: build the release from a full clone "
                             "(the wheel ships the committed results)")
        target = Path(self.build_lib) / "sikd_utils" / SHIPPED
        shutil.rmtree(target, ignore_errors=True)  # a stale build/ must not ship deleted results
        shutil.copytree(RESULTS, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))


setup(cmdclass={"build_py": BuildWithResults})
