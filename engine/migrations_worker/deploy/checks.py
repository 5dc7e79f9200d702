"""What the deploy step checks around `migrate`: sessions that would stall DDL before, and
half-built schema objects after.

Before: a long-running or idle-in-transaction session holds its locks until it ends, so every
ALTER behind it waits out lock_timeout and retries until it gives up. Better to see it (and
optionally wait it out) before starting. After: a failed `CREATE INDEX CONCURRENTLY` leaves an
INVALID index that is maintained on every write but never used, and a `NOT VALID` constraint
left unvalidated is not enforced for old rows; both mean a migration stopped half-way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections

DEFAULT_MIN_AGE_SECONDS = 60.0


@dataclass(frozen=True)
class Session:
    pid: int
    state: str
    seconds: float  # age of its transaction (or of its query, outside a transaction)
    application: str
    user: str
    query: str

    def describe(self) -> str:
        query = " ".join(self.query.split())[:120]
        return (
            f"pid {self.pid} ({self.application or 'unnamed'}, user {self.user}) {self.state} "
            f"for {self.seconds:.0f}s: {query}"
        )


@dataclass(frozen=True)
class SchemaProblem:
    kind: str  # "invalid index" or "unvalidated constraint"
    name: str
    table: str

    def describe(self) -> str:
        fix = (
            "drop it and build it again (re-running its CreateIndexConcurrently migration does)"
            if self.kind == "invalid index"
            else "run ALTER TABLE ... VALIDATE CONSTRAINT (or the migration that does)"
        )
        return f"{self.kind} {self.name} on {self.table}: {fix}"


def blocking_sessions(min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
                      database: str = "default") -> list[Session]:
    """Other sessions of this database in a transaction (or query) older than `min_age_seconds`."""
    with connections[database].cursor() as cursor:
        cursor.execute(
            """
            SELECT pid, state,
                   extract(epoch FROM now() - coalesce(xact_start, query_start)),
                   coalesce(application_name, ''), coalesce(usename, ''), coalesce(query, '')
            FROM pg_stat_activity
            WHERE datname = current_database()
              AND pid <> pg_backend_pid()
              AND backend_type = 'client backend'
              AND (state LIKE 'idle in transaction%%' OR state = 'active')
              AND now() - coalesce(xact_start, query_start) > make_interval(secs => %s)
            ORDER BY 3 DESC
            """,
            [min_age_seconds],
        )
        return [Session(*row) for row in cursor.fetchall()]


def wait_for_quiet(min_age_seconds: float, timeout: float, database: str = "default",
                   on_wait: Callable[[list[Session]], None] | None = None,
                   poll: float = 2.0) -> list[Session]:
    """Wait up to `timeout` seconds for the blocking sessions to end; returns those left."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = blocking_sessions(min_age_seconds, database)
        if not sessions or time.monotonic() >= deadline:
            return sessions
        if on_wait is not None:
            on_wait(sessions)
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def schema_problems(database: str = "default") -> list[SchemaProblem]:
    """INVALID indexes and unvalidated constraints in the database's own schemas."""
    with connections[database].cursor() as cursor:
        cursor.execute(
            """
            SELECT 'invalid index', i.relname, t.relname
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = i.relnamespace
            WHERE NOT x.indisvalid
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%%'
            UNION ALL
            SELECT 'unvalidated constraint', c.conname, t.relname
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.conrelid
            JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE NOT c.convalidated
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            ORDER BY 1, 3, 2
            """
        )
        return [SchemaProblem(*row) for row in cursor.fetchall()]
