# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SIZE ?= medium
SCALE ?= medium

.PHONY: demo test test-fast venv lock services services-down lint lint-migrations browser flower bench mutations

# Exactly the versions (and files, by hash) of requirements/dev.lock; then the two projects
# themselves, editable, without resolving anything again.
$(VENV)/.installed: pyproject.toml engine/pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements/dev.lock
	$(PY) -m pip install -q --no-deps -e ./engine -e .
	$(PY) -m pip check
	touch $@

venv: $(VENV)/.installed

# The lock files, from pyproject.toml and engine/pyproject.toml: runtime.lock (the image: both
# projects' dependencies), dev.lock (+ dev, lint: `make venv`), bench.lock (+ bench). Versions
# already locked stay unless the ranges exclude them; LOCK_ARGS=--upgrade takes the newest the
# ranges allow, LOCK_ARGS='--upgrade-package django' one package (tests/deploy/test_locks.py checks
# the result against the ranges).
LOCK := $(VENV)/bin/uv pip compile pyproject.toml engine/pyproject.toml --quiet --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS)
lock: venv
	$(LOCK) -o requirements/runtime.lock
	$(LOCK) --extra dev --extra lint -o requirements/dev.lock
	$(LOCK) --extra dev --extra lint --extra bench -o requirements/bench.lock

services: venv
	deploy/services.sh up

services-down:
	deploy/services.sh down

lint: venv
	$(VENV)/bin/ruff check .

# FLEET=N: the fleet demo instead, N seeded databases on two servers rolled out in waves
# (deploy/fleet_demo.sh; e.g. make demo FLEET=4 SIZE=small).
demo: services
ifdef FLEET
	deploy/fleet_demo.sh $(FLEET) $(SIZE)
else
	deploy/demo.sh $(SIZE)
endif

# Flower on 127.0.0.1:5555 for workers you started yourself; needs FLOWER_BASIC_AUTH=user:password.
flower: services
	deploy/flower.sh

# Debian's chromium for the admin's browser tests (apt-get as root; otherwise it says what to do).
browser:
	deploy/browser.sh

# manage.py defaults to the production settings (as the image runs); here the local services'.
lint-migrations: venv
	DJANGO_SETTINGS_MODULE=config.settings.dev $(PY) manage.py lint_migrations

test: services
	deploy/services.sh second up
	$(VENV)/bin/ruff check .
	$(MAKE) lint-migrations
	deploy/browser.sh || echo "[browser] going on: the browser tests will fail and say what to install"
	deploy/compose_cli.sh || echo "[compose] going on: the compose tests will fail and say what to install"
	$(PY) -m tests $(PYTEST_ARGS)

# The edit-test loop: the unit tests and the engine's, but for the slow and the serial ones, on
# parallel workers (a few minutes; `make test` runs everything).
test-fast: services
	deploy/services.sh second up
	$(PY) -m pytest -n 3 --dist loadfile -m "not slow and not serial" tests/unit tests/engine $(PYTEST_ARGS)

# Not part of `make test`: minutes long, and its figures depend on the machine (bench/README.md).
$(VENV)/.bench-installed: $(VENV)/.installed requirements/bench.lock
	$(PY) -m pip install -q --require-hashes -r requirements/bench.lock
	touch $@

bench: services $(VENV)/.bench-installed
	$(PY) -m bench.run --scale $(SCALE) $(BENCH_ARGS)

# Not part of `make test`: breaks the code one way at a time in a copy of the repository and runs
# the test that must catch it (tests/mutations; e.g. MUTATIONS=sql: for the names starting so).
mutations: services
	$(PY) -m tests.mutations $(MUTATIONS)
