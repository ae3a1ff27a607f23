# The two commands: `make run` (the app, embedded default) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Tests keep their database, broker folder and artifacts apart from a running `make run`.
TEST_ENV := MAILFERRY_VAR_DIR=$(CURDIR)/var/test

.PHONY: run test lint format bench-copy bench-pages bench-graph bench-graph-scale bench-ews bench-dnscheck bench-verify bench-google

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	scripts/run.sh

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-copy: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_copy.py

bench-pages: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_pages.py

bench-graph: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_graph.py

bench-graph-scale: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_graph_scale.py

bench-ews: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_ews.py

bench-dnscheck: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_dnscheck.py

bench-verify: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_verify.py

bench-google: $(STAMP)
	$(TEST_ENV) $(BIN)/python scripts/bench_google.py
