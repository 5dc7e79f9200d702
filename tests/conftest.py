"""Shared fixtures: every test runs against the real PostgreSQL and Redis that
`deploy/services.sh up` started (or DATABASE_URL / REDIS_URL)."""

import os
import subprocess
import sys
from pathlib import Path

import celery.contrib.pytest
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url(alias: str) -> str:
    """A URL for the test database of `alias` (created or not), for subprocesses to share it."""
    from django.db import connections

    s = connections[alias].settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    name = s["TEST"].get("NAME") or s["NAME"]
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{name}"


@pytest.fixture
def test_database_url(transactional_db) -> str:
    """A URL for the test database, for subprocesses (workers, manage.py) to share it."""
    return database_url("default")


@pytest.fixture
def manage(test_database_url):
    """Run `manage.py` in a subprocess against the test database; returns CompletedProcess."""

    def run(*args: str, env: dict | None = None, timeout: float = 300, **kwargs):
        full_env = {
            **os.environ,
            "DATABASE_URL": test_database_url,
            "SECOND_DATABASE_URL": database_url("far"),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    return run


@pytest.fixture
def celery_env(test_database_url) -> dict[str, str]:
    from django.conf import settings

    from tests.workers import flush_broker

    flush_broker(settings.CELERY_BROKER_URL)
    return {
        **os.environ,
        "DATABASE_URL": test_database_url,
        # The `far` target's test database (config/settings/test.py): `near` follows DATABASE_URL.
        "SECOND_DATABASE_URL": database_url("far"),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_REDIS_URL": settings.CELERY_BROKER_URL,
        "PYTHONPATH": os.pathsep.join(map(str, (ROOT, ROOT / "engine", ROOT / "apps" / "backend" / "src"))),
    }


# -- Celery workers ------------------------------------------------------------------------------
#
# Two kinds, for two kinds of test:
#
# - `celery_worker`: Celery's embedded worker (celery.contrib.pytest, which pytest-celery loads
#   as its plugin), a thread of the test's own process running the engine's real tasks on the
#   project's Celery app, broker and test databases. For a test that only needs the work done
#   by a worker, as Celery's testing guide has it. One per test: a process holds one worker
#   (Celery keeps a worker's shutdown state in module globals).
# - `processes` (tests/workers.py): `celery worker` / `celery beat` subprocesses, for what a
#   thread cannot be: killed with SIGKILL mid-batch, several workers racing for the same run,
#   beat, a worker with an environment of its own (targets file, application name, broker).
#
# pytest-celery 1.x also brings Docker-based fixtures (`celery_setup`; its `celery_worker` runs a
# worker in a container): no Docker daemon runs here or in CI, so the embedded worker takes the
# name back.


@pytest.fixture
def celery_app(transactional_db):
    """The project's Celery app (migrations_worker) for the embedded worker, not a test app: the
    worker runs the engine's tasks, with the test settings' broker and result backend, on an
    empty queue. Its thread has connections of its own, so the test's rows must be committed
    (`transactional_db`). Celery leaves logging alone while a `setup_logging` receiver is
    connected: pytest keeps its own."""
    from celery import signals
    from django.conf import settings

    from migrations_worker.celery import app
    from tests.workers import flush_broker

    flush_broker(settings.CELERY_BROKER_URL)

    def keep_the_test_process_logging(**kwargs) -> None:
        return None

    signals.setup_logging.connect(keep_the_test_process_logging)
    yield app
    signals.setup_logging.disconnect(keep_the_test_process_logging)


@pytest.fixture(scope="session")
def celery_worker_parameters() -> dict:
    """The embedded worker consumes the engine's queue; no ping task round trip (the app has no
    `celery.ping`); a slice in flight gets time to finish at the end of the test."""
    from migrations_worker import conf

    return {"queues": [conf.get("QUEUE")], "perform_ping_check": False, "shutdown_timeout": 60.0}


# pytest-celery's `celery_worker` (a container) gives way to Celery's embedded one.
celery_worker = celery.contrib.pytest.celery_worker


@pytest.fixture
def processes(celery_env, tmp_path, request):
    """Celery workers and beat in subprocesses, for tests that need a real process (see above);
    killed at the end, logs shown on failure."""
    from tests.workers import Processes

    procs = Processes(celery_env, tmp_path)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


# The tests that measure what a busy neighbour would distort (latencies, lock waits, the timing
# of a back-off): `python -m tests` runs them alone, after the tests that share the machine.
SERIAL = {
    "tests/jobs/test_schema_fixes.py": "the live load's slowest statement during the deploy",
    "tests/deploy/test_rolling_deploy.py": "both releases' lock waits behind the migration",
    "tests/engine/test_ddl_locks.py": "how long writers wait behind a lock and a back-off",
    "tests/deploy/test_lock_wait_log.py": "that a 20 ms lock leaves no wait over 100 ms in the log",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path)).relative_to(ROOT).as_posix()
        if any(path.startswith(prefix) for prefix in SERIAL):
            item.add_marker(pytest.mark.serial)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def seeded_before_the_gate():
    """engine_app back at 0001 with 5,000 widgets: more than its gate (1,000) finishes inline."""
    from migrations_worker.models import JobRun
    from tests.engine_app.support import LATEST, make_widgets, migrate_to

    migrate_to(("engine_app", "0001_initial"))
    JobRun.objects.all().delete()
    make_widgets(5_000)
    yield
    JobRun.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE engine_app_widget SET touches = 1")  # so the gate opens at once
    migrate_to(LATEST)


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix() -> None:
    """Under pytest-xdist the test settings already name each worker's databases (their
    TEST_DATABASE_NAME ends in the worker id, and the subprocesses a worker starts inherit it);
    pytest-django's own suffix would name the `near` database differently from a subprocess."""
