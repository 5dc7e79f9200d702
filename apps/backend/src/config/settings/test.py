"""Tests: the dev services plus a test-only app whose job exercises the engine."""

import os

from migrations_worker import targets as mw_targets

from .dev import *  # noqa: F403
from .dev import CELERY_BEAT_SCHEDULE, INSTALLED_APPS, MIGRATIONS_WORKER, REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "tests.engine_app"]
# Short leases and heartbeats: crash tests see a lost batch reclaimed in seconds, not minutes.
MIGRATIONS_WORKER = {
    **MIGRATIONS_WORKER,
    "STALE_HEARTBEAT_SECONDS": 3,
    "TUNING": {"lease_seconds": 3.0, "retry_backoff_seconds": 0.5},
    # A fleet rollout looks at its waiting targets every second, re-sends a lost step after 10.
    "FLEET_POLL_SECONDS": 1.0,
    "FLEET_RESEND_SECONDS": 10.0,
    "TARGETS": {
        **MIGRATIONS_WORKER["TARGETS"],
        "near": {"server": "pg-first"},
        "far": {"server": "pg-second"},
    },
}
# Under pytest-xdist (`make test` runs the suite in parallel), each worker process has databases
# and Redis databases of its own: its test database name ends in its worker id, and it takes its
# own block of Redis databases (REDIS_DBS_PER_WORKER of them, counted down from 15). Done once,
# in the worker: the environment it leaves carries the result to every subprocess it starts.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
REDIS_DBS_PER_WORKER = 3
if XDIST_WORKER and os.environ.get("MW_TEST_WORKER") != XDIST_WORKER:
    os.environ["MW_TEST_WORKER"] = XDIST_WORKER
    os.environ["TEST_DATABASE_NAME"] = (
        f"{os.environ.get('TEST_DATABASE_NAME', 'test_investments')}_{XDIST_WORKER}")
    if "TEST_REDIS_URL" in os.environ:
        _base, _db = os.environ["TEST_REDIS_URL"].rsplit("/", 1)
        _slot = int(XDIST_WORKER.removeprefix("gw"))
        os.environ["TEST_REDIS_URL"] = f"{_base}/{int(_db) - REDIS_DBS_PER_WORKER * _slot}"
TEST_WORKER_SLOT = int(os.environ.get("MW_TEST_WORKER", "gw0").removeprefix("gw"))
if 15 - REDIS_DBS_PER_WORKER * TEST_WORKER_SLOT - (REDIS_DBS_PER_WORKER - 1) < 1:
    raise ValueError(f"pytest-xdist worker {TEST_WORKER_SLOT}: Redis has 16 databases, enough for "
                     f"{15 // REDIS_DBS_PER_WORKER} workers (-n {15 // REDIS_DBS_PER_WORKER} at most)")
# The worker's Redis databases: the broker, a scratch database's broker, the packaging test's.
TEST_REDIS_DBS = {name: 15 - REDIS_DBS_PER_WORKER * TEST_WORKER_SLOT - offset
                  for offset, name in enumerate(("broker", "scratch", "distribution"))}
# A name of its own per checkout/run (TEST_DATABASE_NAME), so parallel runs never collide.
TEST_DATABASE_NAME = os.environ.get("TEST_DATABASE_NAME", "test_investments")
DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}  # noqa: F405
# Two more targets for the tests that run the engine on many databases: `near`, a second
# database on the same server, and `far`, on the second server (`deploy/services.sh second up`).
# Their test names derive from TEST_DATABASE_NAME too. A worker subprocess gets DATABASE_URL and
# SECOND_DATABASE_URL pointing at the test databases (tests/conftest.py), so the same names
# reach the same databases there. Each is migrated like `default`, with the project's own
# migrations: every migration operation runs on the database being migrated.
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL",
                                     "postgres://postgres@127.0.0.1:55434/investments2")
DATABASES["near"] = {  # noqa: F405
    **DATABASES["default"],  # noqa: F405
    "NAME": f"{DATABASES['default']['NAME']}_near",  # noqa: F405
    "TEST": {"NAME": f"{TEST_DATABASE_NAME}_near"},
}
DATABASES["far"] = {  # noqa: F405
    **mw_targets.database_settings(mw_targets.Target("far", SECOND_DATABASE_URL),
                                   DATABASES["default"]),  # noqa: F405
    "TEST": {"NAME": f"{TEST_DATABASE_NAME}_far"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "schedule": 1.0} for name, entry in CELERY_BEAT_SCHEDULE.items()
}
# Tests use their own Redis database, so a demo's queue never feeds them stray messages.
CELERY_BROKER_URL = os.environ.get("TEST_REDIS_URL",
                                   f"{REDIS_URL.rsplit('/', 1)[0]}/{TEST_REDIS_DBS['broker']}")
