"""Packaging facts: lazy imports, dependency bounds, layout."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_modules_do_not_import_monai_or_pandas_eagerly():
    # `import sikd_utils` must stay fast (MONAI alone costs ~5 s); heavy imports happen on first use
    code = (
        "import sys, sikd_utils, sikd_utils.averaging, sikd_utils.models, sikd_utils.distill, "
        "sikd_utils.train, sikd_utils.data;"
        "print(sorted(m for m in ('monai', 'pandas', 'matplotlib', 'nibabel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _requirement_names(lines):
    return {re.split(r"[<>=!~\[ ;]", ln.strip(), maxsplit=1)[0].lower() for ln in lines
            if ln.strip() and not ln.strip().startswith("#")}


def test_requirements_are_lower_bounds_and_cover_package_dependencies():
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    for line in reqs:
        line = line.split("#")[0].strip()
        if not line:
            continue
        assert "==" not in line, f"exact pin in requirements.txt: {line}"
        if line.startswith(("torch", "numpy")):
            assert "<" not in line, f"upper bound on {line}: Colab keeps its own"
    assert any(ln.startswith("jupyter-book") and "<2" in ln for ln in reqs)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirement_names(project["dependencies"]) <= _requirement_names(reqs)
    for dep in project["dependencies"]:
        assert "==" not in dep and not (dep.startswith(("torch", "numpy")) and "<" in dep)


def test_exact_torch_pin_lives_only_in_ci_constraints():
    assert "torch==" in (ROOT / ".ci" / "constraints.txt").read_text()
    # make venv installs through .ci/install-venv, whose uv and pip installs both take the constraints
    assert "bash .ci/install-venv" in (ROOT / "Makefile").read_text()
    assert "requirements=(-c .ci/constraints.txt -r requirements.txt -e .)" in (ROOT / ".ci" / "install-venv").read_text()
