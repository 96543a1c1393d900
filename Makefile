# Two entry points for a fresh machine (see README): `make app` and `make test`.
# torch is pinned to the CPU build here; GPU users install their CUDA build first (README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PORT ?= 5006

.PHONY: setup app test test-fast browsers lint bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"

# A working /usr/bin/chromium for the browser tests (installs Debian's package; see .ci/browsers).
browsers:
	@bash .ci/browsers

# Serves on localhost only; for a classroom network see README ("Serving a classroom").
# --warm: imports and the job worker processes start with the server, not with the first visitor.
SERVE_FLAGS ?=
app: setup
	$(BIN)/panel serve app.py --warm --port $(PORT) $(SERVE_FLAGS)

lint: setup
	$(BIN)/ruff check .

# Without a working browser (e.g. Ubuntu's snap-only chromium) the browser tests are skipped with
# the reason printed; everything else runs.
test: setup
	$(BIN)/ruff check .
	@if bash .ci/browsers; then marker="not gpu and not paper"; else \
	  echo "make test: SKIPPING the browser tests (marker ui), reason above" >&2; \
	  marker="not gpu and not paper and not ui"; fi; \
	$(BIN)/python -m pytest -m "$$marker" -q

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not ui and not gpu and not paper" -q

bench: setup
	$(BIN)/python benchmarks/run.py
