# tieout: `make demo` then `make test`. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help setup demo run reconcile report status sandbox test soak fuzz lint format bench samples clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing tieout and its tools into $(VENV) (a minute on a fresh machine)"
	@$(BIN)/python -m pip install -qq --disable-pip-version-check --upgrade pip
	@# setuptools warns that an editable install is editable: said once here, not 20 lines
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -qq --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install tieout with its dev tools (safe to re-run)

demo: setup ## run the whole pipeline on the sample files against an embedded sandbox
	$(BIN)/tieout demo $(ARGS)

run: setup ## process the inbox (what cron calls): extract → post → reconcile → report
	$(BIN)/tieout run $(ARGS)

reconcile: setup ## match posted records against Propexo's synced data
	$(BIN)/tieout reconcile $(ARGS)

report: setup ## re-render the latest run's report (ARGS=RUN_ID for another)
	$(BIN)/tieout report $(ARGS)

status: setup ## ledger summary: what is pending, in doubt or failed
	$(BIN)/tieout status $(ARGS)

sandbox: setup ## serve the Propexo emulator on 127.0.0.1:8765 (Ctrl-C stops it)
	$(BIN)/tieout sandbox --db data/sandbox.sqlite $(ARGS)

test: setup ## the full test suite (unit, property, end-to-end against the real sandbox)
	$(BIN)/python -m pytest -q -n 3 $(ARGS)

soak: setup ## exactly once under every combination of the sandbox's options (long)
	TIEOUT_SOAK=1 $(BIN)/python -m pytest -q tests/test_exactly_once.py tests/test_workers.py tests/test_odd_answers.py $(ARGS)

fuzz: setup ## the fuzz tests with a long budget (2,000 examples each)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_security.py $(ARGS)

lint: setup ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## benchmarks, printed as ratios against baselines measured in the same run
	$(BIN)/python -m benchmarks $(ARGS)

samples: setup ## regenerate the synthetic samples and the sandbox seed
	$(BIN)/python scripts/make_samples.py

clean: ## remove the virtualenv, caches and the demo workspace (never the ledger or reports)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data/demo
