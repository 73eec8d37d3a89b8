# The two commands of the README, each self-contained on a fresh machine:
#   make book   -- build the book (executes every notebook on the embedded synthetic data)
#   make test   -- run the test suite (unit tests + papermill runs of every notebook in fast mode)
# Both create .venv/ and install into it first. CI pins torch to the local CPU wheel (.ci/constraints.txt).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
JOBS ?= 2

# Bytecode: every command below writes the compiled modules it imports into .venv/pycache, once, and
# later processes (xdist workers, notebook kernels, DDP ranks) read them -- even where the environment
# sets PYTHONDONTWRITEBYTECODE=1 (as CI's does), which would otherwise make every process recompile
# torch & co. on import (8 s instead of 3.5 s). The source tree stays free of __pycache__ folders.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache

.PHONY: test book browser-test slow-test ci clean venv sync-notebooks student-notebooks figures

venv: $(STAMP)

# .ci/install-venv installs through uv when it can (seconds), else through pip (minutes); SIKD_NO_UV=1: pip
$(STAMP): requirements.txt pyproject.toml .ci/constraints.txt .ci/install-venv
	bash .ci/install-venv $(PYTHON) $(VENV)
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow and not browser" tests

# -W -n: any warning or unresolved reference fails the build; a failing notebook cell aborts it
# (execute.raise_on_error in _config.yml). Notebooks re-execute only when their code changed
# (jupyter-cache); `make clean` forces a fresh execution, e.g. after changing sikd_utils.
book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

# Opens the built book in Debian's headless Chromium (installed by .ci/install-chromium when missing).
# Depends on `book` so it never runs against a missing or stale site (a no-change rebuild takes seconds).
browser-test: book
	bash .ci/install-chromium
	$(BIN)/python -m pytest -m browser tests

# Copies of the notebooks without the cells tagged `solution`, for handing out (not committed).
student-notebooks: $(STAMP)
	$(BIN)/python book/student_notebooks.py notebooks _build/student-notebooks

# Redraw the explanatory figures under book/figures/ (commit the result).
figures: $(STAMP)
	$(BIN)/python book/figures.py

# Longer evidence checks (e.g. the synthetic domain gap is real), run by .ci/run.
slow-test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m slow tests

ci: test book browser-test slow-test

# Copy the repository URL and version of sikd_utils/_project.py into the notebooks' Colab badges and
# install cells and into _config.yml (tests/test_install.py fails while any copy disagrees).
sync-notebooks: $(STAMP)
	$(BIN)/python scripts/sync_notebooks.py

clean:
	rm -rf _build
