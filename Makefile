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

browsers:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Serves on localhost only; for a classroom network see README ("Serving a classroom").
# --warm: imports and the job worker processes start with the server, not with the first visitor.
SERVE_FLAGS ?=
app: setup
	$(BIN)/panel serve app.py --warm --port $(PORT) $(SERVE_FLAGS)

lint: setup
	$(BIN)/ruff check .

test: setup browsers
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not gpu" -q

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not ui and not gpu" -q

bench: setup
	$(BIN)/python benchmarks/run.py
