"""One deploy step at a time per database: a session advisory lock, waited for, then refused.

PostgreSQL scopes an advisory lock to its database, so each target has its own deploy lock: a
deploy of one target never waits for a deploy of another, on the same server or not.

A rerun may arrive while the session of the deploy it replaces is still being torn down by the
server, so the lock is waited for a while before refusing. A killed deploy has its server
session ended within a second (PostgreSQL 14+, `client_connection_check_interval`, set on every
session by `pg.check_client_connection`): its running statement (an index build waiting out old
transactions) would otherwise hold the lock on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from ..exceptions import DeployLocked

DEPLOY_LOCK_KEY = 0x6D69677261746531
DEFAULT_WAIT_SECONDS = 15.0

HOLDER = """
SELECT a.pid, coalesce(a.application_name, ''), a.state, coalesce(left(a.query, 80), '')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = %s
LIMIT 1
"""


def holder(cursor) -> str:
    """Who holds the deploy lock, for the operator deciding whether to wait or stop it."""
    cursor.execute(HOLDER, [DEPLOY_LOCK_KEY])
    row = cursor.fetchone()
    if row is None:
        return "it has just ended"
    pid, application, state, query = row
    return f"pid {pid}, {application or 'unnamed'}, {state}: {' '.join(query.split())}"


def acquire(wait: float, on_wait: Callable[[str], None] | None = None,
            using: str = DEFAULT_DB_ALIAS) -> None:
    """Take the lock of the database `using` on this session, waiting up to `wait` seconds for
    another deploy of it to end; DeployLocked, naming the holder, if it does not."""
    with connections[using].cursor() as cursor:
        deadline = time.monotonic() + wait
        told = False
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [DEPLOY_LOCK_KEY])
            if cursor.fetchone()[0]:
                return
            who = holder(cursor)
            if time.monotonic() >= deadline:
                raise DeployLocked(f"another migrate_online is running against this database ({who}); "
                                   "let it finish (or stop it) before starting a second one")
            if not told and on_wait is not None:
                on_wait(f"waiting up to {wait:.0f}s for another migrate_online to end ({who})")
                told = True
            time.sleep(0.5)


def release(using: str = DEFAULT_DB_ALIAS) -> None:
    connection = connections[using]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [DEPLOY_LOCK_KEY])
    except DatabaseError:
        # The session is gone, and its lock with it; the error that ended the deploy (if any)
        # is the one to report, not this one.
        connection.close()
