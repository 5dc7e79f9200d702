"""PostgreSQL facts the engine relies on, in one place: how long a statement may wait, what a
SQLSTATE means for a retry, and whether the session is still there.

Timeouts are scoped (kraken's `timeouts.apply_timeouts`): inside a transaction they end with it
(`set_config(..., true)`); outside one they are set for the session and put back afterwards, so
a concurrent index build's lifted `statement_timeout` never leaks into the next statement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from .exceptions import InsideTransaction

# A lock not granted within lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
# A batch that failed with one of these did nothing (its transaction rolled back) and would
# succeed once another session lets go: a lock not granted, a deadlock, a serialization failure.
WAITED_STATES = (LOCK_NOT_AVAILABLE, "40P01", "40001")
# The session itself is gone: connection exceptions (class 08), and the server shutting down or
# restarting (57P01 admin shutdown, 57P02 crash, 57P03 cannot connect now).
CONNECTION_LOST_STATES = ("57P01", "57P02", "57P03")

# PostgreSQL 14+ checks this often, while a statement runs, that its client is still there, and
# cancels the statement of a client that died (a SIGKILLed worker, a killed deploy): else the
# orphaned statement runs on (a sleeping batch, an index build) holding its locks, and a batch's
# row lock keeps the batch from being reclaimed, until the statement ends by itself.
CLIENT_CHECK_INTERVAL = "1s"

MAX_MILLIS = 2_147_483_647  # PostgreSQL's ceiling for lock_timeout / statement_timeout
# A session advisory lock, taken shared by a lock-safe DDL step while it backs off after a
# refused lock request: the health check of every running job sees it and steps aside for a
# while (throttle.ddl_backing_off), so a step whose short lock_timeout keeps losing to batch
# transactions on its table gets its turn instead of escalating.
DDL_BACKING_OFF_KEY = 0x6D69677261746532

SET_TIMEOUTS = "SELECT set_config('lock_timeout', %s, %s), set_config('statement_timeout', %s, %s)"
READ_TIMEOUTS = "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"


def millis(value: int | None) -> str:
    """A timeout as PostgreSQL takes it; None or 0 means no limit."""
    return f"{value}ms" if value else "0"


@contextmanager
def timeouts(cursor, *, lock_timeout_ms: int | None, statement_timeout_ms: int | None) -> Iterator[None]:
    """Run the block under these timeouts. Inside a transaction they end with it; outside one
    they are set for the session and restored on the way out, error or not. The cursor's own
    database says which: a batch on any target."""
    local = cursor.db.in_atomic_block
    previous = None
    if not local:
        cursor.execute(READ_TIMEOUTS)
        previous = cursor.fetchone()
    cursor.execute(SET_TIMEOUTS, [millis(lock_timeout_ms), local, millis(statement_timeout_ms), local])
    try:
        yield
    finally:
        if previous is not None and not cursor.closed:
            try:
                cursor.execute(SET_TIMEOUTS, [previous[0], False, previous[1], False])
            except DatabaseError:
                cursor.db.close()  # a session that cannot take a SET is not one to reuse


def check_client_connection(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: every session of this project's processes has its
    statements cancelled within a second of its client dying."""
    if connection.vendor == "postgresql" and connection.pg_version >= 140000:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('client_connection_check_interval', %s, false)",
                           [CLIENT_CHECK_INTERVAL])


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE behind `exc` (Django wraps psycopg's errors), or ''."""
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) or ""


def is_lock_timeout(exc: BaseException) -> bool:
    return sqlstate(exc) == LOCK_NOT_AVAILABLE


def connection_lost(exc: BaseException, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether `exc` means the database session is gone (a restart, a failover, a terminated
    backend), as opposed to a statement failing on a live session. A server-side error carries
    a SQLSTATE; psycopg raises OperationalError / InterfaceError without one when the connection
    itself failed ("server closed the connection unexpectedly", "the connection is closed", a
    failed connect). The Django connection's own state is no guide: leaving an atomic block may
    already have replaced it."""
    if not isinstance(exc, DatabaseError):
        return False
    cause = exc.__cause__ or exc
    state = sqlstate(exc)
    if state.startswith("08") or state in CONNECTION_LOST_STATES:
        return True
    if isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError)) and not state:
        return True
    raw = connections[using].connection
    return raw is not None and bool(raw.closed or getattr(raw, "broken", False))


def transient(exc: BaseException, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether a failure is the database being busy or briefly gone rather than the work being
    wrong. Read it right after the error: it looks at the connection's state."""
    return sqlstate(exc) in WAITED_STATES or connection_lost(exc, using=using)


def require_no_transaction(what: str, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """The one check for steps that commit on their own (Django's NotInTransactionMixin)."""
    if connections[using].in_atomic_block:
        raise InsideTransaction(
            f"{what} must run outside a transaction: put it in a migration with `atomic = False`"
        )


def reset_if_broken(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop a connection that can no longer be used, so the next statement gets a fresh one."""
    conn = connections[using]
    try:
        if conn.connection is not None and not conn.is_usable():
            conn.close()
    except DatabaseError:
        conn.close()


def wait_for_database(timeout: float, database: str = "default", poll: float = 1.0) -> str:
    """Connect, retrying until `timeout`; '' once connected, else the last error."""
    deadline = time.monotonic() + timeout
    conn = connections[database]
    while True:
        try:
            conn.ensure_connection()
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return ""
        except Exception as exc:  # any failure to connect is worth another try until the deadline
            conn.close()
            error = f"{type(exc).__name__}: {exc}".strip()
            if time.monotonic() >= deadline:
                return error
            time.sleep(poll)
