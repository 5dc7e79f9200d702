"""Indexes built without blocking writes: `CREATE INDEX CONCURRENTLY` as a lock-safe step
(`ddl.run_step`), re-runnable after a build that died half-way and left an INVALID index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.operations.base import Operation
from psycopg import sql

from .base import LockSafeOperation
from .ddl import run_step, text_of, timeout_sql
from .lock_retry import LockRetry

log = logging.getLogger("migrations_worker.ddl")

# An index column's direction, as SQL written here (never the text of the column spec itself).
INDEX_ORDER = {"": sql.SQL(""), "ASC": sql.SQL(" ASC"), "DESC": sql.SQL(" DESC")}


def index_state(name: str, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """'missing', 'valid' or 'invalid' (a CONCURRENTLY build that died half-way)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace",
            [name],
        )
        row = cursor.fetchone()
    if row is None:
        return "missing"
    return "valid" if row[0] else "invalid"


class CreateIndexConcurrently(LockSafeOperation):
    """`CREATE [UNIQUE] INDEX CONCURRENTLY`, re-runnable: a valid index is kept, an INVALID one
    left by a failed build is dropped and rebuilt (`IF NOT EXISTS` alone would keep it)."""

    required = ("name", "table", "columns")
    optional = {"unique": False, "state_operations": [], "lock_retry": None}

    def __init__(self, name: str, table: str, columns: Sequence[str], unique: bool = False,
                 state_operations: Sequence[Operation] = (), lock_retry: dict | None = None):
        self.name = name
        self.table = table
        self.columns = list(columns)
        self.unique = unique
        self.state_operations = list(state_operations)
        self.lock_retry = lock_retry
        LockRetry.resolve(lock_retry)

    def _columns(self) -> sql.Composable:
        parts = []
        for column in self.columns:
            name, _, direction = column.partition(" ")
            if direction.upper() not in INDEX_ORDER:
                raise ValueError(f"bad index column {column!r}")
            parts.append(sql.SQL("{}{}").format(sql.Identifier(name), INDEX_ORDER[direction.upper()]))
        return sql.SQL(", ").join(parts)

    def create_sql(self) -> sql.Composable:
        return sql.SQL("CREATE {unique}INDEX CONCURRENTLY {name} ON {table} ({columns})").format(
            unique=sql.SQL("UNIQUE " if self.unique else ""),
            name=sql.Identifier(self.name),
            table=sql.Identifier(self.table),
            columns=self._columns(),
        )

    def drop_sql(self) -> sql.Composable:
        return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {name}").format(
            name=sql.Identifier(self.name)
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._apply(schema_editor, self.create_sql(), lambda lock_retry: ensure_index(
            self.name, self.create_sql(), self.drop_sql(), lock_retry,
            using=schema_editor.connection.alias))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._apply(schema_editor, self.drop_sql(), lambda lock_retry: run_step(
            [self.drop_sql()], long_running=True, lock_retry=lock_retry,
            description=f"drop index {self.name}", using=schema_editor.connection.alias))

    def _apply(self, schema_editor, statement: sql.Composable,
               run: Callable[[LockRetry], object]) -> None:
        """`sqlmigrate` shows `statement` under its timeouts; a migration runs it."""
        lock_retry = LockRetry.resolve(self.lock_retry)
        if schema_editor.collect_sql:
            schema_editor.collected_sql.extend(
                timeout_sql(long_running=True, concurrent=True, lock_retry=lock_retry))
            schema_editor.collected_sql.append(text_of(statement, schema_editor.connection) + ";")
            return
        run(lock_retry)

    def describe(self):
        return f"Create index {self.name} on {self.table} concurrently"


def ensure_index(name: str, create: sql.Composable, drop: sql.Composable,
                 lock_retry: LockRetry | None = None, *, using: str = DEFAULT_DB_ALIAS) -> None:
    if index_state(name, using=using) == "valid":
        log.info("index %s already exists and is valid", name)
        return

    def drop_if_invalid() -> None:
        if index_state(name, using=using) == "invalid":
            log.warning("index %s is INVALID (a failed build); dropping it to rebuild", name)
            run_step([drop], long_running=True, lock_retry=lock_retry,
                     description=f"drop invalid index {name}", using=using)

    run_step([create], long_running=True, lock_retry=lock_retry,
             description=f"create index {name}", before_attempt=drop_if_invalid, using=using)
