# Quick start:  make demo   |   make test
# Each target creates .venv with the project and its test/dev tools on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-random lint interop bench clean

$(STAMP): pyproject.toml
	@# Debian's python3 needs python3-venv for `-m venv`; install it when we are root.
	$(PY) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
		rm -rf $(VENV) && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev,interop,celery]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m smtpsubmit demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The property tests with fresh seeds and 10x the examples (tests/conftest.py's profiles);
# `make test` and CI use the fixed, derandomised profile.
test-random: $(STAMP)
	HYPOTHESIS_PROFILE=random $(BIN)/python -m pytest -q -m 'hypothesis and not interop and not bench'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict smtpsubmit

interop: $(STAMP)
	bash interop/run.sh

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
