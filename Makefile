# rlayer: `make demo` runs the pipeline on this machine; `make test` runs the tests.
# Every target installs what it needs (Debian packages, the venv, local R sources).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help deps venv test lint fmt local-sources

help:
	@echo "make demo   - build an R layer end to end on this machine (local stack)"
	@echo "make test   - lint, type-check and run every test"
	@echo "make lint | fmt | local-sources"

deps:
	@sh scripts/system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

# Where CRAN cannot be reached: R's source and a file:// CRAN-like repo from Debian.
local-sources: deps
	@sh scripts/local-sources.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy chalicelib app.py

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: deps venv local-sources lint
	$(BIN)/pytest
