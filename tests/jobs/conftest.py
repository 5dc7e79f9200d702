"""Scratch databases at the schema a job runs on, and the job's batches run on them directly.

`legacy_template` (once per session) is the legacy schema the demo starts from; a module copies
it and migrates it to its job's step. A batch is run the way the engine runs one, inside a
transaction of its own, by calling the registered job, so a test pins the code that ships.
"""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from psycopg import sql

from migrations_worker.job import BatchResult, get_job
from tests.scratch import ScratchDatabase

# Migrations enqueue jobs; with no broker to reach, those runs stay pending for the tests to work.
NO_BROKER = "redis://127.0.0.1:1/0"
NUMBERS = itertools.count(1)


class JobDatabase(ScratchDatabase):
    def __init__(self, label: str):
        super().__init__(f"{connection.settings_dict['NAME']}_jobs_{label}"[-63:])
        self.env["TEST_REDIS_URL"] = NO_BROKER

    def create_from(self, template: JobDatabase) -> JobDatabase:
        self.drop()
        self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(self.name), sql.Identifier(template.name)))
        return self

    def copy(self, label: str) -> JobDatabase:
        return JobDatabase(f"{label}_{next(NUMBERS)}").create_from(self)

    def migrate(self, app: str, target: str) -> None:
        self.manage("migrate", app, target, "-v", "0")

    def execute(self, query: str, params=None) -> None:
        with self.connect() as conn:
            conn.execute(query, params)

    def insert(self, table: str, columns: str, rows: list[tuple]) -> None:
        """Rows with explicit ids, then the table's id sequence moved past them."""
        names = [c.strip() for c in columns.split(",")]
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join(sql.Placeholder() * len(names))),
                rows,
            )
            sequence = cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table]).fetchone()[0]
            if sequence:  # not for a UUID key
                cursor.execute(sql.SQL("SELECT setval(%s, max(id)) FROM {}").format(
                    sql.Identifier(table)), [sequence])

    def batch(self, job: str, start: int, end: int) -> BatchResult:
        """One batch over the keys (start, end], committed on its own as the engine commits it."""
        with self.connect() as conn, conn.transaction(), conn.cursor() as cursor:
            return get_job(job).process_batch(cursor, start, end)

    def remaining(self, job: str) -> int:
        """The job's "done when" verification: 0 means done."""
        with self.connect() as conn, conn.cursor() as cursor:
            return get_job(job).count_remaining(cursor)

    def run(self, job: str) -> dict:
        """The whole job through the engine, inline (`backfill run`); its run row."""
        self.manage("backfill", "run", job)
        return self.latest_run(job)

    def latest_run(self, job: str) -> dict:
        rows = self.rows("SELECT status, rows_done, report, error FROM migrations_worker_jobrun "
                         "WHERE job_name = %s ORDER BY id DESC LIMIT 1", [job])
        return dict(zip(("status", "rows_done", "report", "error"), rows[0], strict=True))

    def sessions_waiting_for_a_lock(self) -> int:
        return self.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")

    def batches(self, job: str) -> list[tuple[int, int, int]]:
        """(start, end, rows) of each batch of the job's latest run, in key order."""
        return self.rows(
            "SELECT b.start_key, b.end_key, b.rows_affected FROM migrations_worker_jobbatch b "
            "WHERE b.run_id = (SELECT max(id) FROM migrations_worker_jobrun WHERE job_name = %s) "
            "ORDER BY b.start_key", [job])


@pytest.fixture(scope="session")
def legacy_template(django_db_setup) -> JobDatabase:
    """The legacy schema: the domain apps at their initial migration, the rest current."""
    db = JobDatabase("legacy").create()
    db.migrate_legacy()
    yield db
    db.drop()
