# medfw — `make demo` runs the whole pipeline on the bundled example device; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medfw-installed
PYTEST_ARGS ?= -n 2

.PHONY: demo test lint typecheck unit coverage bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m medfw.demo --out build/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy src

# the whole suite with line and branch coverage; prints coverage per package and fails below the floors in
# pyproject.toml ([tool.medfw.coverage])
unit: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/pytest $(PYTEST_ARGS) --cov=medfw --cov-branch --cov-report=
	$(BIN)/python tools/coverage_floor.py

coverage: unit

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
