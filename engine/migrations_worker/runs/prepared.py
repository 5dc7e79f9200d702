"""Statements a worker runs for every batch, parsed and planned once per session.

Django's PostgreSQL backend binds parameters on the client: every execution sends the statement's
text, which the server parses and plans again. For the statements of a batch that is paid once
per batch, tens of times a second: planning the claim (claim.CLAIM, eight CTEs) took 1.1 ms of
its 2-3 ms, and each of `alerts_uuid`'s two statements 0.55-0.7 ms, in 80 ms batches
(docs/benchmarks.md). A prepared statement is planned on its first executions in a session and
then only executed (PostgreSQL keeps a generic plan once it costs no more than the custom
ones); psycopg keeps the session's prepared statements and prepares again on a new connection.

The cursor is psycopg's server-side binding one, wrapped like any Django cursor (its errors
are Django's, execute wrappers see its statements). Server-side binding takes one statement per
call and parameters only where a value goes: no `IN %s` with a tuple (`= ANY(%s)` with a list
works), none in `SET` (`set_config()` works); a job opts in (`Job.prepare_statements`).
`MIGRATIONS_WORKER["PREPARED_STATEMENTS"] = False` turns it off for a site whose pooler does
not keep prepared statements; the statements are then sent as before.
"""

from __future__ import annotations

import psycopg
from django.db import connections
from django.db.backends.utils import CursorWrapper

from .. import conf

# psycopg prepares a statement by itself after this many executions: never, in effect.
NEVER_BY_ITSELF = 2**31 - 1


class _Preparing(psycopg.Cursor):
    """Server-side binding, each statement prepared on its first execution in the session."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def enabled() -> bool:
    return bool(conf.get("PREPARED_STATEMENTS"))


def cursor(using: str) -> CursorWrapper:
    """A cursor on the session of database `using` (in its transaction, if one is open) whose
    statements are prepared, or Django's own cursor when the site turned that off."""
    connection = connections[using]
    if not enabled():
        return connection.cursor()
    connection.ensure_connection()
    session = connection.connection
    if session.prepare_threshold is None:
        # Django's backend turns psycopg's preparing off altogether (its own cursors bind on the
        # client and are never prepared); on again, it prepares only what this cursor asks for.
        session.prepare_threshold = NEVER_BY_ITSELF
    return CursorWrapper(_Preparing(session), connection)
