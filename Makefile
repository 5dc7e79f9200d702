# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SIZE ?= small

.PHONY: demo test venv services services-down lint lint-migrations

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

services: venv
	deploy/services.sh up

services-down:
	deploy/services.sh down

lint: venv
	$(VENV)/bin/ruff check .

demo: services
	deploy/demo.sh $(SIZE)

lint-migrations: venv
	$(PY) manage.py lint_migrations

test: services
	$(VENV)/bin/ruff check .
	$(MAKE) lint-migrations
	$(PY) -m pytest $(PYTEST_ARGS)
