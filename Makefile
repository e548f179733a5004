# The two commands of the README:
#   make main   set up .venv, fetch MNIST, run the main job (a real study plus its report)
#   make test   set up .venv and run the tests (what CI runs, through .ci/run)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CASE   ?= T2M1_T1M2
TRIALS ?= 200
FIDELITY ?= quick
WORKERS ?= 2
STORAGE ?= sqlite:///studies/runs/ablate.db

.PHONY: setup data main test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, and only the local CPU build (any other spec may pull a multi-GB CUDA build)
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $@

setup: $(VENV)/.installed

data: setup
	$(BIN)/ablate data fetch

main: data
	$(BIN)/ablate study --case $(CASE) --trials $(TRIALS) --fidelity $(FIDELITY) --workers $(WORKERS) --storage $(STORAGE)
	$(BIN)/ablate report sensitivity-$(CASE)-$(FIDELITY) --storage $(STORAGE) --out studies/runs/report-$(CASE)-$(FIDELITY)

lint: setup
	$(BIN)/ruff check cgi ablate tests scripts
	$(BIN)/ruff format --check cgi ablate tests scripts

test: lint
	$(BIN)/pytest -q

bench: data
	$(BIN)/ablate bench --json

clean:
	rm -rf $(VENV) studies/runs .pytest_cache .ruff_cache
