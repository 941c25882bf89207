# Everything bootstraps .venv itself: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two workers: the suite mostly waits on the services it starts (TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck check serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the service + phone simulator + a sample alert, live (SCRIPTED=1: a phone accepts, exit 0)
	$(BIN)/responder demo $(if $(SCRIPTED),--scripted,)

test: $(STAMP)  ## the whole suite, on SQLite and PostgreSQL
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: $(STAMP)  ## validate config/ and playbooks/
	$(BIN)/responder check

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
