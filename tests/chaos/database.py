"""Scratch databases on a given server, driven the way an operator would: `manage.py` in a
subprocess (migrate to the legacy schema, `seed_demo`, `migrate_online`), read with psycopg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from seed.legacy import LEGACY_TARGETS

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "config.settings.test"


class Database:
    def __init__(self, url: str, broker_url: str, **env: str):
        self.url = url
        self.name = url.rsplit("/", 1)[1]
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TEST_REDIS_URL": broker_url,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'apps' / 'backend' / 'src'}",
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

    def popen(self, *args: str, log: Path) -> subprocess.Popen:
        """`manage.py` in the background, output appended to `log`, in its own process group."""
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(self.command(*args), cwd=ROOT, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def migrate_legacy(self) -> None:
        for app, target in LEGACY_TARGETS:
            self.manage("migrate", app, *([target] if target else []), "-v", "0")

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


def engine_database(url: str, broker_url: str, widgets: int) -> Database:
    """A database with only the engine, the results table and the test job's widgets: what a
    single-fault test of the engine needs, migrated in a few seconds."""
    db = Database(url, broker_url)
    for app in ("engine_app", "django_celery_results"):
        db.manage("migrate", app, "-v", "0")
    with db.connect() as conn:
        conn.execute("INSERT INTO engine_app_widget (id, touches, value) "
                     "SELECT g, 0, g FROM generate_series(1, %s) g", [widgets])
        conn.execute("SELECT setval(pg_get_serial_sequence('engine_app_widget', 'id'), %s)",
                     [widgets])
    return db
