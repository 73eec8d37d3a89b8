# The two commands of the README, each self-contained on a fresh machine:
#   make book   -- build the book (executes every notebook on the embedded synthetic data)
#   make test   -- run the test suite (unit tests + papermill runs of every notebook in fast mode)
# Both create .venv/ and install into it first. CI pins torch to the local CPU wheel (.ci/constraints.txt).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
JOBS ?= 2

.PHONY: test book browser-test ci clean venv

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml .ci/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c .ci/constraints.txt -r requirements.txt -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow and not browser" tests

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

browser-test: $(STAMP)
	bash .ci/install-chromium
	$(BIN)/python -m pytest -m browser tests

ci: test book browser-test

clean:
	rm -rf _build
