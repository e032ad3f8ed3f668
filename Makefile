# Choreoscope. `make run` brings the product up; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DEMO ?= 1
# `make test` runs the suite twice: on the embedded default (SQLite, in-memory layer, eager
# tasks) and on PostgreSQL + Redis. SERVICES=0 runs only the first.
SERVICES ?= 1
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/choreoscope
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?= -n 2

.PHONY: run test test-embedded test-services lint bench fuzz clean help

help:
	@echo "make run    - install, migrate, create the admin login, serve on http://127.0.0.1:$${PORT:-8000} (DEMO=0 without the demo shop)"
	@echo "make test   - the whole test suite (embedded default, then PostgreSQL + Redis)"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - the benchmarks under bench/"
	@echo "make fuzz   - the fuzz tests with random seeds and FUZZ_SCALE (20) times the examples, before a release"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# With the demo, its flow definition too (orders complete at their dispatch notice, and declared
# expectations turn a faulty service's orders stuck within a minute), unless CHOREOSCOPE_FLOWS is set,
# and its AsyncAPI documents (rewards' is out of date), unless CHOREOSCOPE_ASYNCAPI is set.
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensureadmin
	$(if $(filter 1,$(DEMO)),CHOREOSCOPE_FLOWS="$${CHOREOSCOPE_FLOWS-demo/flows.yaml}" \
		CHOREOSCOPE_ASYNCAPI="$${CHOREOSCOPE_ASYNCAPI-demo/asyncapi/*.yaml}") exec $(BIN)/python manage.py serve

test: test-embedded $(if $(filter 1,$(SERVICES)),test-services)

test-embedded: $(VENV)/.dev
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

test-services: $(VENV)/.dev
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CHOREOSCOPE_REQUIRE_SERVICES=1 \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# The suite runs tests/fuzz derandomized and small; this runs them with random seeds and
# FUZZ_SCALE times as many examples, on the database of the environment (SQLite unless
# DATABASE_URL is set; `make fuzz DATABASE_URL=postgres://…` for PostgreSQL).
FUZZ_SCALE ?= 20
fuzz: $(VENV)/.dev
	CHOREOSCOPE_FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest -p no:xdist -q tests/fuzz

bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
