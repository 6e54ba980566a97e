# Every target bootstraps .venv on first use, so each works from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: test test-fast lint docs figures figures-quick bench clean

$(VENV)/.dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[dev]'
	touch $@

$(VENV)/.docs: $(VENV)/.dev
	$(PIP) install -e '.[dev,docs]'
	touch $@

test: $(VENV)/.dev  ## the whole suite, slow tests included
	$(PY) -m pytest -q

test-fast: $(VENV)/.dev
	$(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

docs: $(VENV)/.docs
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

figures: $(VENV)/.dev
	$(PY) -m meanfield.cli figures

figures-quick: $(VENV)/.dev
	$(PY) -m meanfield.cli figures --quick

bench: $(VENV)/.dev
	$(PY) benchmarks/run.py

clean:
	rm -rf docs/_build docs/auto_examples paper_figures/output .pytest_cache .mypy_cache .hypothesis
