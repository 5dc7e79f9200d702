"""Reverses that refuse, saying why: the project's policy for going back.

Every migration's reverse either works, losing nothing, or refuses with the reason and what to do
instead, before it has undone anything. Django's own refusal (an operation that is not
`reversible`) says only "not reversible", and a reverse that drops a column or a table drops
whatever it holds. So:

- `RefuseReverse(reason)`: the migration cannot be taken back at all (the data it changed is
  not kept, or moving back is a schema change of its own); `reason` says so and what to do.
- `RefuseReverseWhile(query, reason)`: the migration can be taken back once nothing would be
  lost; `query` counts what would be (soft-deleted rows that dropping `is_deleted` would bring
  back, merges not yet undone), and the reverse refuses while it counts any.

Django unapplies a migration's operations last to first, so either one goes *last* in
`operations`: it is checked before anything is undone. The other operations of a migration that
ends with `RefuseReverse` still declare a reverse (`reverse_steps=[]`): Django refuses a
migration holding an operation that is not `reversible` before any operation runs, with its
own message, which would hide this one. Both raise `exceptions.Irreversible` (exit code 3).
"""

from __future__ import annotations

from ..exceptions import Irreversible
from .base import DeclaredOperation


class ReverseRefusal(DeclaredOperation):
    """Changes nothing going forward; going back, decides whether the migration may."""

    reduces_to_sql = True
    reversible = True
    required = ("reason",)

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def refusal(self, app_label: str, connection) -> str:
        """The refusal's message, or "" to let the reverse go on; `connection` is the database
        being migrated."""
        raise NotImplementedError

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.collect_sql:  # sqlmigrate --backwards: show the check, run nothing
            schema_editor.collected_sql.append(f"-- {self.describe()}")
            return
        message = self.refusal(app_label, schema_editor.connection)
        if message:
            raise Irreversible(f"migrating {app_label} back refused: {message}")


class RefuseReverse(ReverseRefusal):
    """The migration cannot be taken back; `reason` says why and what to do instead."""

    def __init__(self, reason: str):
        self.reason = reason

    def refusal(self, app_label: str, connection) -> str:
        return self.reason

    def describe(self):
        return "Refuse to be reversed"


class RefuseReverseWhile(ReverseRefusal):
    """The migration can be taken back once `query` (a `SELECT count(*) ...`, written in the
    migration) counts nothing: the rows its reverse would lose. The message is the count, then
    `reason` (what those rows are and how to resolve them)."""

    required = ("query", "reason")

    def __init__(self, query: str, reason: str):
        self.query = query
        self.reason = reason

    def refusal(self, app_label: str, connection) -> str:
        with connection.cursor() as cursor:
            cursor.execute(self.query)
            found = cursor.fetchone()[0]
        return f"{found:,} {self.reason}" if found else ""

    def describe(self):
        return "Refuse to be reversed while rows would be lost"
