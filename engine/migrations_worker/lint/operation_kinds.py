"""What kind of operation this is, as far as the rules care: lock-safe, concurrent, a wrapper.

The only module of the linter that imports the engine's migration operations, so where they
live is written once.
"""

from __future__ import annotations

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations.base import Operation

from ..operations import CreateIndexConcurrently, RequireJob, Safely, SafeSQL

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
