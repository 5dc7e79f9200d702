"""Scratch databases of a test's own, driven the way an operator would: `manage.py` in a
subprocess (migrate to the legacy schema, `seed_demo`, `migrate_online`), read with psycopg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

from seed.legacy import LEGACY_TARGETS

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = "config.settings.test"


def server_url(database: str, alias: str = DEFAULT_DB_ALIAS) -> str:
    """A URL for `database` on the server of the test target `alias` (`far`: the second one)."""
    s = connections[alias].settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{database}"


class Database:
    def __init__(self, url: str, broker_url: str, **env: str):
        self.url = url
        self.name = url.rsplit("/", 1)[1]
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TEST_REDIS_URL": broker_url,
            "PYTHONPATH": os.pathsep.join(map(str, (ROOT, ROOT / "engine", ROOT / "apps/backend/src"))),
            **env,
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "manage.py"), *args]

    def manage(self, *args: str, timeout: float = 600, check: bool = True,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(*args), cwd=ROOT, env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def popen(self, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """`manage.py` in the background, output appended to `log`, in its own process group."""
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(self.command(*args), cwd=ROOT, env={**self.env, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def migrate_legacy(self, *options: str) -> None:
        """The legacy state the demo starts from; `options`: e.g. `--database far`."""
        for app, target in LEGACY_TARGETS:
            self.manage("migrate", app, *([target] if target else []), "-v", "0", *options)

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, **kwargs)

    def scalar(self, query: str, params=None):
        with self.connect() as conn:
            return conn.execute(query, params).fetchone()[0]

    def rows(self, query: str, params=None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()

    def execute(self, query: str, params=None) -> None:
        with self.connect() as conn:
            conn.execute(query, params)



class ScratchDatabase(Database):
    """A database of the test's own on the server of the test target `alias` (the test server
    unless told), created empty and dropped afterwards."""

    def __init__(self, name: str, alias: str = DEFAULT_DB_ALIAS):
        from django.conf import settings

        super().__init__(server_url(name, alias), settings.CELERY_BROKER_URL)
        self.alias = alias

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(server_url("postgres", self.alias), autocommit=True) as conn:
            conn.execute(statement)

    def create(self) -> ScratchDatabase:
        self.drop()
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def drop(self) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
