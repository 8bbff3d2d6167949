# regnerf-tf developer commands. Everything runs inside a git-ignored virtual
# environment (.venv) that `make` creates and keeps in sync with setup.cfg.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

DEMO_ARGS ?=

.PHONY: help venv demo test test-fast clean

help:
	@echo "make demo       create .venv if needed, then RegNeRF vs mip-NeRF from 3 views of a built-in scene"
	@echo "make test       create .venv if needed, install regnerf-tf[tests], run the test suite"
	@echo "make test-fast  the suite without tests marked 'large'"
	@echo "make venv       only create/update the virtual environment"
	@echo "make clean      remove caches (keeps .venv)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23.2"

# Reinstall whenever the package metadata changes.
$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[tests]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/regnerf-demo $(DEMO_ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not large" $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache build *.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
