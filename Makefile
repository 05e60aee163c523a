# Two commands for a newcomer: `make run` (the pipeline) and `make test` (the suite).
# Both create or reuse .venv and install the pinned stack from constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# dvc.yaml's stage commands call `python`: make it the project's interpreter.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Nothing here may reach the network: no telemetry from DVC or MLflow.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: install run params test lint study sweep compare bench clean mlflow-server mlflow-server-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/dvc repro

params: $(STAMP)
	$(BIN)/python -m logreg.params

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --timeout 900

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

study: $(STAMP)
	$(BIN)/python -m logreg.study

sweep: $(STAMP)
	$(BIN)/python -m logreg.sweep

# `make compare` compares the last two finished MLflow runs; name others with
# `make compare RUNS="<run id or DVC experiment> <run id or DVC experiment> ..."`.
compare: $(STAMP)
	$(BIN)/python -m logreg.compare $(or $(RUNS),--last 2)

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/scale_memory.py
	$(BIN)/python bench/sweep.py

# The team tracking server (PostgreSQL store, proxied artifacts) in .mlflow-server/;
# runs then use it with `mlflow=server`.
mlflow-server: $(STAMP)
	$(BIN)/python -m logreg.tracking.server start

mlflow-server-stop: $(STAMP)
	$(BIN)/python -m logreg.tracking.server stop

clean:
	rm -rf data/raw data/prepared data/rebalanced models reports outputs multirun
