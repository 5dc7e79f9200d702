"""Every operation of a migration that reaches the database, nested ones included, with the
project state just before it: what the linter reads and what the deploy step looks for gates in.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.migrations.operations import SeparateDatabaseAndState
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from .ddl import Safely


def walk(operations: list[Operation], state: ProjectState | None = None,
         app_label: str = "") -> Iterator[tuple[Operation, ProjectState | None]]:
    """(operation, state before it) for every operation that touches the database, including
    those inside Safely and SeparateDatabaseAndState(database_operations=...). Without a
    `state`, states are not tracked (and None is yielded): cheaper when only the operations
    matter."""
    state = state.clone() if state is not None else None
    for operation in operations:
        yield operation, state
        yield from walk(inner_operations(operation), state, app_label)
        if state is not None:
            operation.state_forwards(app_label, state)


def inner_operations(operation: Operation) -> list[Operation]:
    """The operations a wrapper runs against the database (Safely, SeparateDatabaseAndState)."""
    if isinstance(operation, Safely):
        return operation.operations
    if isinstance(operation, SeparateDatabaseAndState):
        return operation.database_operations
    return []


def operations_of(operations: list[Operation], kind: type) -> list:
    """The operations of `kind` among `operations`, nested ones included."""
    return [operation for operation, _ in walk(operations) if isinstance(operation, kind)]
