# Every target creates .venv when missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck diagram-check pytest bench bench-smoke diagram clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamfsm demo

test: $(STAMP) lint typecheck diagram-check pytest

lint: $(STAMP)
	$(BIN)/ruff check streamfsm tests benchmarks
	$(BIN)/ruff format --check streamfsm tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict streamfsm

diagram-check: $(STAMP)
	$(BIN)/streamfsm diagram --check docs/state-diagram.md

pytest: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --smoke

diagram: $(STAMP)
	$(BIN)/streamfsm diagram --write docs/state-diagram.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
