# rlayer: `make demo` runs the pipeline on this machine; `make test` runs the tests.
# Every target installs what it needs (Debian packages, the venv, local R sources).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help deps venv test lint fmt local-sources demo serve

help:
	@echo "make demo   - build an R layer end to end on this machine (local stack)"
	@echo "make test   - lint, type-check and run every test"
	@echo "make serve  - run the local stack (API on http://127.0.0.1:8000) until Ctrl-C"
	@echo "make package STAGE=dev - the CloudFormation template and artifacts in out/dev (no AWS)"
	@echo "make deploy STAGE=dev  - package, then deploy the stack to your AWS account"
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
	$(BIN)/mypy chalicelib rlayer app.py deploy
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: deps venv local-sources lint
	$(BIN)/pytest

# The whole pipeline once: local stack up, one layer built and proven, record shown, stack down.
demo: deps venv local-sources
	@$(BIN)/python -m rlayer.local.demo

serve: deps venv local-sources
	@$(BIN)/rlayer serve

# AWS: `chalice package` + deploy/resources.yml -> out/$(STAGE)/ (offline, no credentials;
# the region only names things), then CloudFormation (README, "Deploy to AWS").
STAGE ?= dev
.PHONY: package deploy

package: venv
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/python -m deploy.package --stage $(STAGE) --out out/$(STAGE)

deploy: package
	STAGE=$(STAGE) OUT=out/$(STAGE) sh deploy/deploy.sh
