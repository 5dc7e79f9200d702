"""A fleet of real databases for the rollout tests: seeded legacy databases over two PostgreSQL
servers (the test server and the second one, both started by `deploy/services.sh`), declared in a
targets file, rolled out by `manage.py fleet` in a subprocess with real Celery workers and beat.

Seeding is done once per server into a template (`seed_demo --size small` on the legacy schema);
each test's databases are copies (`CREATE DATABASE ... TEMPLATE`). The control database is the
test database: the rollout's rows are read here through the ORM, the targets through psycopg.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from tests.conftest import database_url
from tests.scratch import Database, ScratchDatabase, server_url
from tests.workers import Processes, flush_broker

# The servers a fleet spreads over, by the test alias that lives on each (tests.scratch.server_url).
SERVERS = {"pg-first": "default", "pg-second": "far"}
# Small, fixed batches with a pause: a small seed keeps the workers busy long enough for a fault
# to land mid-rollout. Past one quarantined key a run pauses (the quarantine budget).
TUNING = {"pause_seconds": 0.05, "batch_size": 500, "min_batch_size": 500, "max_batch_size": 500,
          "quarantine_allowance": 1, "quarantine_rate": 0, "retry_backoff_seconds": 0.2}


def prefix() -> str:
    return settings.TEST_DATABASE_NAME + "_fleet"


def copy_database(template: ScratchDatabase, name: str) -> ScratchDatabase:
    """A new database on the template's server, copied from it."""
    copy = ScratchDatabase(name, template.alias)
    copy.drop()
    with psycopg.connect(server_url("postgres", template.alias), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template.name)))
    return copy


def seed_legacy(db: Database) -> None:
    db.migrate_legacy()
    db.manage("seed_demo", "--size", "small", "--seed", "11", "--dup-fraction", "0.1")


@pytest.fixture(scope="session")
def legacy_templates() -> Iterator[dict[str, ScratchDatabase]]:
    """One seeded legacy database per server, the model of every fleet database on it."""
    templates = {}
    for server, alias in SERVERS.items():
        template = ScratchDatabase(f"{prefix()}_tpl_{server.replace('-', '_')}", alias).create()
        seed_legacy(template)
        templates[server] = template
    yield templates
    for template in templates.values():
        template.drop()


class Fleet:
    """The fleet's databases, its targets file, and the operator's commands against it."""

    def __init__(self, control_url: str, workdir: Path):
        self.workdir = workdir
        self.targets: dict[str, Database] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.file = workdir / "targets.toml"
        self.control = Database(
            control_url, settings.CELERY_BROKER_URL, MW_TARGETS_FILE=str(self.file),
            SECOND_DATABASE_URL=database_url("far"), MW_GATE_INLINE_LIMIT="0",
            DJANGO_SETTINGS_MODULE="tests.chaos.settings", CHAOS_TUNING=json.dumps(TUNING))
        self.created: list[ScratchDatabase] = []

    def add(self, name: str, db: Database, server: str) -> Database:
        self.targets[name] = db
        self.labels[name] = {"server": server, "fleet": "test"}
        self.write()
        return db

    def write(self) -> None:
        lines = []
        for name, db in self.targets.items():
            labels = ", ".join(f'{k} = "{v}"' for k, v in self.labels[name].items())
            lines += [f"[targets.{name}]", f'url = "{db.url}"', f"labels = {{ {labels} }}", ""]
        self.file.write_text("\n".join(lines))

    def manage(self, *args: str, **kwargs):
        return self.control.manage(*args, **kwargs)

    def fleet(self, *args: str, timeout: float = 600):
        """`manage.py fleet ARGS` over the test's targets (never `default` or near/far)."""
        selecting = ("--select", "fleet=test") if args[0] in ("plan", "rollout") else ()
        return self.manage("fleet", *args, *selecting, timeout=timeout, check=False)

    def popen(self, *args: str, log: Path):
        selecting = ("--select", "fleet=test") if args[0] in ("plan", "rollout") else ()
        return self.control.popen("fleet", *args, *selecting, log=log)


@pytest.fixture
def fleet(test_database_url, legacy_templates, tmp_path) -> Iterator[Fleet]:
    """Four copies of the seeded legacy database, t1/t3 on the first server and t2/t4 on the
    second; the first is the canary of the default waves."""
    found = Fleet(test_database_url, tmp_path)
    for number in range(1, 5):
        server = "pg-first" if number % 2 else "pg-second"
        db = copy_database(legacy_templates[server], f"{prefix()}_t{number}")
        found.created.append(db)
        found.add(f"t{number}", db, server)
    yield found
    for db in found.created:
        db.drop()


@pytest.fixture
def fleet_workers(fleet, request) -> Iterator[Processes]:
    """Two Celery workers and beat, with the fleet's targets file."""
    flush_broker(settings.CELERY_BROKER_URL)
    # Worker processes and beat: the fleet's targets file comes by env; faults kill them.
    procs = Processes({**fleet.control.env, "PYTHONUNBUFFERED": "1"}, fleet.workdir)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


