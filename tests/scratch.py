"""Scratch databases of a test's own, built the way an operator's would be: migrated to the
legacy schema by `manage.py migrate` in a subprocess, then filled by `seed_demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from django.db import connection
from psycopg import sql

from seed.legacy import LEGACY_TARGETS

ROOT = Path(__file__).resolve().parents[1]


def server_url(database: str) -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{database}"


class ScratchDatabase:
    def __init__(self, name: str):
        self.name = name
        self.url = server_url(name)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'apps' / 'backend' / 'src'}",
        }

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def create(self) -> ScratchDatabase:
        self.drop()
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def drop(self) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def manage(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def migrate_legacy(self) -> None:
        for app, target in LEGACY_TARGETS:
            self.manage("migrate", app, *([target] if target else []), "-v", "0")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def scalar(self, query: str, params=None):
        with self.connect() as conn:
            return conn.execute(query, params).fetchone()[0]

    def rows(self, query: str, params=None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()
