"""Fixtures of the deploy tests: an empty database of their own."""

import psycopg
import pytest
import redis
from django.db import connection

from tests.engine_app.support import scratch_broker_url
from tests.scratch import server_url


@pytest.fixture
def fresh_database():
    """An empty database of its own (not the test database), dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_fresh"
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield server_url(name)
    redis.Redis.from_url(scratch_broker_url()).flushdb()
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
