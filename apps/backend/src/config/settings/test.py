"""Tests: the dev services plus a test-only app whose job exercises the engine."""

from .dev import *  # noqa: F403
from .dev import INSTALLED_APPS, MIGRATIONS_WORKER

INSTALLED_APPS = [*INSTALLED_APPS, "tests.engine_app"]
MIGRATIONS_WORKER = {**MIGRATIONS_WORKER, "STALE_HEARTBEAT_SECONDS": 3, "REQUEUE_INTERVAL_SECONDS": 1}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
