# tieout: `make demo` then `make test`. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help setup lock demo run reconcile report status sandbox test soak fuzz lint format bench samples clean coverage

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv

# uv installs exactly the versions in uv.lock (what CI tested), in seconds from its cache, and
# compiles them to bytecode: where PYTHONDONTWRITEBYTECODE is set (this machine, many CI images)
# Python never caches it, and every command would compile pandas and pandera again (2.4 s each).
$(UV):
	@echo "installing uv $(UV_VERSION) into $(TOOLS) (the installer that reads uv.lock)"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install -qq --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock Makefile | $(UV)
	@echo "installing the locked versions of tieout and its tools into $(VENV) (uv sync --frozen)"
	@UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --extra dev --python $(PYTHON) \
		--compile-bytecode --quiet
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install tieout with its dev tools, exactly as locked (safe to re-run)

lock: $(UV) ## after editing pyproject.toml's dependencies: re-resolve uv.lock (then commit it)
	$(UV) lock

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

# worksteal: a worker that runs out of tests takes half of another's queue, so the long tests
# (started first, see tests/conftest.py) do not leave one worker running alone at the end.
# The `bench` smoke test runs in `make bench`, not here. Twelve workers on two cores: most of a
# test's time is spent waiting on the sandbox (its jobs, syncs and clocks), not on the CPU
# (826 tests: 12 min 19 s with five, 9 min 55 s with eight; 1,472 tests: 9 min 7 s with
# twelve, 7.6 min of CPU).
WORKERS ?= 12
test: setup ## the full test suite (unit, property, end-to-end against the real sandbox)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal -m "not bench" $(ARGS)

soak: setup ## exactly once under every combination of the sandbox's options (long)
	TIEOUT_SOAK=1 $(BIN)/python -m pytest -q tests/test_exactly_once.py tests/test_workers.py tests/test_intake.py tests/test_odd_answers.py tests/test_write_log.py tests/test_recovery.py $(ARGS)

fuzz: setup ## the fuzz tests with a long budget (2,000 examples each)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_security.py $(ARGS)

coverage: setup ## the test suite with line and branch coverage (pytest-cov's terminal report, TOTAL line)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal -m "not bench" --cov --cov-branch --cov-report=term $(ARGS)

lint: setup ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## benchmarks, printed as ratios against baselines measured in the same run
	$(BIN)/python -m pytest -q -p no:xdist -m bench
	$(BIN)/python -m benchmarks $(ARGS)

samples: setup ## regenerate the synthetic samples and the sandbox seed
	$(BIN)/python scripts/make_samples.py

clean: ## remove the virtualenv, caches and the demo workspace (never the ledger or reports)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis data/demo
