"""Tests: the dev services plus a test-only app whose job exercises the engine."""

import os

from .dev import *  # noqa: F403
from .dev import CELERY_BEAT_SCHEDULE, INSTALLED_APPS, MIGRATIONS_WORKER, REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "tests.engine_app"]
# Short leases and heartbeats: crash tests see a lost batch reclaimed in seconds, not minutes.
MIGRATIONS_WORKER = {
    **MIGRATIONS_WORKER,
    "STALE_HEARTBEAT_SECONDS": 3,
    "TUNING": {"lease_seconds": 3.0, "retry_backoff_seconds": 0.5},
}
# A name of its own per checkout/run (TEST_DATABASE_NAME), so parallel runs never collide.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_investments")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_BEAT_SCHEDULE = {
    name: {**entry, "schedule": 1.0} for name, entry in CELERY_BEAT_SCHEDULE.items()
}
# Tests use their own Redis database, so a demo's queue never feeds them stray messages.
CELERY_BROKER_URL = os.environ.get("TEST_REDIS_URL", REDIS_URL.rsplit("/", 1)[0] + "/15")
