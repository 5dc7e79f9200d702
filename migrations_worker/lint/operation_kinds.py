"""What kind of operation this is, as far as the rules care: lock-safe, concurrent, a wrapper.

The only module of the linter that imports the engine's migration operations, so where they
live is written once.
"""

from __future__ import annotations

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations import operations as ops
from django.db.migrations.operations.base import Operation

from ..ddl import CreateIndexConcurrently, Safely, SafeSQL
from ..operations import RequireJob

# Steps that commit on their own (and so must not sit in an atomic migration).
LOCK_SAFE_OPERATIONS: tuple[type[Operation], ...] = (Safely, SafeSQL, RequireJob)
CONCURRENT_INDEX_OPERATIONS: tuple[type[Operation], ...] = (
    CreateIndexConcurrently, AddIndexConcurrently, RemoveIndexConcurrently,
)


def is_concurrent(operation: Operation) -> bool:
    """Whether it builds or drops an index CONCURRENTLY (which no transaction block allows)."""
    if isinstance(operation, CONCURRENT_INDEX_OPERATIONS):
        return True
    if isinstance(operation, SafeSQL):
        return any("CONCURRENTLY" in str(s).upper() for step in operation.steps for s in step)
    return False


def inner_operations(operation: Operation) -> list[Operation]:
    """The operations a wrapper runs against the database (Safely, SeparateDatabaseAndState)."""
    if isinstance(operation, Safely):
        return operation.operations
    if isinstance(operation, ops.SeparateDatabaseAndState):
        return operation.database_operations
    return []
