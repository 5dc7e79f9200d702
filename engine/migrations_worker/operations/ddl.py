"""Schema changes that never queue behind a long transaction for long.

Every step runs under a short `lock_timeout`; when PostgreSQL refuses the lock (SQLSTATE
55P03) the whole step is rolled back and asked for again, following a timing table
(`lock_retry.LockRetry`: a lock_timeout and a jittered back-off per attempt, escalating to a
cap, GitLab's `WithLockRetries` as the anchor), logging each wait. Queued behind a lock, an
`ALTER TABLE` blocks every query that arrives after it, so it must give up quickly and try
again rather than wait. The table is the site's (`MIGRATIONS_WORKER["DDL"]`), and each
operation may adjust it for its own steps (`lock_retry={...}`).

Indexes built CONCURRENTLY, re-runnably, are `indexes.CreateIndexConcurrently`, on the same
steps.

A *step* is a list of statements that run in one transaction (e.g. the primary-key swap) or a
single statement that cannot run in one (`CREATE INDEX CONCURRENTLY`). Operations here belong in
`atomic = False` migrations: each step is its own transaction, so a retry never sleeps while
holding locks taken by an earlier step, and a re-run after a crash resumes at the first step
whose effect is missing (steps are written to be idempotent).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, migrations, transaction
from django.db.migrations.operations.base import Operation
from psycopg import sql

from .. import pg
from .base import LockSafeOperation
from .lock_retry import LockRetry

log = logging.getLogger("migrations_worker.ddl")

def run_step(
    statements: Sequence[str | sql.Composable],
    *,
    long_running: bool = False,
    lock_retry: LockRetry | None = None,
    description: str = "",
    before_attempt: Callable[[], None] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Run `statements` in one transaction under lock_timeout, retrying on 55P03 only, on the
    database `using` (the one being migrated: `schema_editor.connection.alias`).

    `long_running` lifts statement_timeout (index builds, VALIDATE CONSTRAINT): they hold only
    weak locks, and cutting them short would leave an invalid index behind. A step of a single
    CONCURRENTLY statement runs outside a transaction block, as PostgreSQL requires.
    `before_attempt` runs before every attempt, e.g. to drop the INVALID index that a
    CONCURRENTLY build refused its lock leaves behind. Returns the number of attempts it took.
    """
    connection = connections[using]
    concurrent = _is_concurrent(statements, connection)

    def execute() -> None:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    return run_callable_step(
        execute,
        long_running=long_running,
        lock_retry=lock_retry,
        description=description or _describe(statements, connection),
        before_attempt=before_attempt,
        in_transaction=not concurrent,
        using=using,
    )


def run_callable_step(
    step: Callable[[], None],
    *,
    long_running: bool = False,
    lock_retry: LockRetry | None = None,
    description: str = "",
    before_attempt: Callable[[], None] | None = None,
    in_transaction: bool = True,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """The retry loop behind every lock-safe step (see `run_step`): one attempt per row of the
    timing table, until one is granted its lock. While it backs off, running jobs step aside."""
    pg.require_no_transaction("a lock-safe DDL step", using=using)
    connection = connections[using]
    lock_retry = lock_retry or LockRetry.resolve()
    attempts = list(lock_retry.attempts())
    began = time.monotonic()
    with backing_off(using) as signal:
        for attempt in attempts:
            if before_attempt is not None:
                before_attempt()
            limits = lock_retry.limits(attempt, long_running=long_running,
                                       concurrent=not in_transaction)
            started = time.monotonic()
            try:
                with (transaction.atomic(using=using) if in_transaction else nullcontext(),
                      connection.cursor() as cursor, pg.timeouts(cursor, **limits)):
                    step()
            except Exception as exc:
                if not pg.is_lock_timeout(exc) or attempt is attempts[-1]:
                    raise
                waited = (time.monotonic() - started) * 1000
                sleep_ms = attempt.jittered_sleep_ms()
                signal()
                log.warning(
                    "ddl %s: lock not granted after %.0fms (attempt %s/%s, lock_timeout %sms); "
                    "retrying in %.0fms",
                    description, waited, attempt.number, len(attempts), limits["lock_timeout_ms"],
                    sleep_ms,
                )
                time.sleep(sleep_ms / 1000)
                continue
            if attempt.number > 1:
                log.info("ddl %s: lock granted on attempt %s", description, attempt.number)
            log.info("ddl %s: done in %.0fms (%s attempt(s))", description,
                     (time.monotonic() - began) * 1000, attempt.number)
            return attempt.number
    raise AssertionError("unreachable")


@contextmanager
def backing_off(using: str = DEFAULT_DB_ALIAS) -> Iterator[Callable[[], None]]:
    """Yields a function that, called after a refused request, shows the running jobs of the
    database `using` that a deploy step is backing off (`pg.DDL_BACKING_OFF_KEY`, see
    throttle.ddl_backing_off) until the step ends, granted or not."""
    connection = connections[using]
    held = False

    def signal() -> None:
        nonlocal held
        if not held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock_shared(%s)", [pg.DDL_BACKING_OFF_KEY])
            held = True

    try:
        yield signal
    finally:
        if held and connection.connection is not None and not connection.connection.closed:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_shared(%s)", [pg.DDL_BACKING_OFF_KEY])
            except DatabaseError:
                connection.close()  # the lock goes with the session


def timeout_sql(
    *, long_running: bool, concurrent: bool = False, lock_retry: LockRetry | None = None
) -> list[str]:
    """The timeouts a step's first attempt runs under, as `sqlmigrate` shows them (and the
    linter checks them); a refused attempt is retried under the next row of the table."""
    lock_retry = lock_retry or LockRetry.resolve()
    first = next(lock_retry.attempts())
    limits = lock_retry.limits(first, long_running=long_running, concurrent=concurrent)
    return [
        f"SET lock_timeout = '{pg.millis(limits['lock_timeout_ms'])}';",
        f"SET statement_timeout = '{pg.millis(limits['statement_timeout_ms'])}';",
    ]


def _is_concurrent(statements: Sequence[str | sql.Composable], connection) -> bool:
    """A lone CONCURRENTLY statement: it must run outside a transaction block."""
    return len(statements) == 1 and "CONCURRENTLY" in text_of(statements[0], connection).upper()


def text_of(statement: str | sql.Composable, connection) -> str:
    """A statement as PostgreSQL reads it (a composed one rendered on `connection`, the Django
    connection of the database being migrated)."""
    return statement if isinstance(statement, str) else statement.as_string(connection.connection)


def _describe(statements: Sequence[str | sql.Composable], connection) -> str:
    first = " ".join(text_of(statements[0], connection).split())
    return first[:90] + ("..." if len(first) > 90 or len(statements) > 1 else "")


class SafeSQL(LockSafeOperation):
    """Raw SQL in lock-safe steps: the project's only sanctioned way to run SQL in a migration.

    `steps` is a list of steps; each step is a list of statements run in one transaction, or a
    single CONCURRENTLY statement. `state_operations` keep Django's model state in line.
    """

    required = ("steps",)
    optional = {"reverse_steps": None, "state_operations": [], "long_running": False,
                "description": "", "lock_retry": None}

    def __init__(
        self,
        steps: Sequence[Sequence[str]],
        reverse_steps: Sequence[Sequence[str]] | None = None,
        state_operations: Sequence[Operation] = (),
        long_running: bool = False,
        description: str = "",
        lock_retry: dict | None = None,
    ):
        self.steps = [list(step) for step in steps]
        self.reverse_steps = None if reverse_steps is None else [list(s) for s in reverse_steps]
        self.state_operations = list(state_operations)
        self.long_running = long_running
        self.description = description
        self.lock_retry = lock_retry
        LockRetry.resolve(lock_retry)  # a bad table fails when the migration is loaded
        self.reversible = reverse_steps is not None

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._run(schema_editor, self.steps)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if self.reverse_steps is None:
            raise NotImplementedError(f"{self.describe()} cannot be reversed")
        self._run(schema_editor, self.reverse_steps)

    def _run(self, schema_editor, steps) -> None:
        lock_retry = LockRetry.resolve(self.lock_retry)
        if schema_editor.collect_sql:  # sqlmigrate: show the SQL, run nothing
            for step in steps:
                schema_editor.collected_sql.extend(
                    timeout_sql(long_running=self.long_running,
                                concurrent=_is_concurrent(step, schema_editor.connection),
                                lock_retry=lock_retry)
                )
                for statement in step:
                    schema_editor.collected_sql.append(
                        text_of(statement, schema_editor.connection).rstrip(";") + ";")
            return
        for step in steps:
            run_step(step, long_running=self.long_running, lock_retry=lock_retry,
                     description=self.description, using=schema_editor.connection.alias)

    def describe(self):
        return self.description or "Lock-safe SQL"


class Safely(Operation):
    """Run Django's own schema operations (AddField, RemoveField, ...) as one lock-safe step:
    one transaction under lock_timeout, retried when the lock is not granted.

    Use one `Safely` per table so no transaction takes ACCESS EXCLUSIVE on two tables.
    """

    reduces_to_sql = True
    reversible = True
    atomic = False

    def __init__(self, *operations: Operation, lock_retry: dict | None = None):
        self.operations = list(operations)
        self.lock_retry = lock_retry
        LockRetry.resolve(lock_retry)

    def deconstruct(self):
        kwargs = {} if self.lock_retry is None else {"lock_retry": self.lock_retry}
        return (self.__class__.__qualname__, self.operations, kwargs)

    def state_forwards(self, app_label, state):
        for operation in self.operations:
            operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._run(app_label, schema_editor, from_state, forwards=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._run(app_label, schema_editor, from_state, forwards=False)

    def _run(self, app_label, schema_editor, from_state, forwards: bool) -> None:
        # Each inner operation needs the states before and after itself.
        states = [from_state]
        for operation in self.operations:
            state = states[-1].clone()
            operation.state_forwards(app_label, state)
            states.append(state)
        pairs = list(zip(self.operations, itertools.pairwise(states), strict=True))

        def apply() -> None:
            first_deferred = len(schema_editor.deferred_sql)
            try:
                for operation, (before, after) in pairs if forwards else reversed(pairs):
                    if (forwards and not schema_editor.collect_sql
                            and _already_done(app_label, operation, before, after,
                                              schema_editor.connection)):
                        log.info("%s: already in the database, skipped", operation.describe())
                        continue
                    if forwards:
                        operation.database_forwards(app_label, schema_editor, before, after)
                    else:
                        operation.database_backwards(app_label, schema_editor, after, before)
                # Deferred statements (constraints, indexes) belong to this step, not to the end.
                deferred = schema_editor.deferred_sql[first_deferred:]
            finally:
                # Also on a failed attempt: what it deferred was rolled back with it, and left in
                # the list it would run a second time when the schema editor closes.
                del schema_editor.deferred_sql[first_deferred:]
            for statement in deferred:
                schema_editor.execute(statement)

        lock_retry = LockRetry.resolve(self.lock_retry)
        if schema_editor.collect_sql:
            schema_editor.collected_sql.extend(timeout_sql(long_running=False, lock_retry=lock_retry))
            apply()
            return
        run_callable_step(apply, lock_retry=lock_retry, description=self.describe(),
                          using=schema_editor.connection.alias)

    def describe(self):
        return "Lock-safe: " + "; ".join(op.describe() for op in self.operations)


def _column_exists(table: str, column: str, connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND column_name = %s",
            [table, column],
        )
        return cursor.fetchone() is not None


def _already_done(app_label: str, operation: Operation, before, after, connection) -> bool:
    """Whether an AddField / RemoveField already took effect: a step that committed before its
    migration was recorded (a crash in between) is skipped on the re-run instead of failing."""
    if isinstance(operation, migrations.AddField):
        model = after.apps.get_model(app_label, operation.model_name)
        column = model._meta.get_field(operation.name).column
        return column is not None and _column_exists(model._meta.db_table, column, connection)
    if isinstance(operation, migrations.RemoveField):
        model = before.apps.get_model(app_label, operation.model_name)
        column = model._meta.get_field(operation.name).column
        return column is not None and not _column_exists(model._meta.db_table, column, connection)
    return False
