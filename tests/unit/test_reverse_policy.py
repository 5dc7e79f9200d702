"""Every migration of the project can be taken back, or refuses saying why, before it undoes
anything (`engine/migrations_worker/operations/reverse.py`): read from the migration files, no database.
`tests/deploy/test_migration_reverses.py` runs the reverses on a seeded database."""

import pytest
from django.db.migrations.loader import MigrationLoader

from migrations_worker.operations import EnqueueJob, RefuseReverse, RefuseReverseWhile
from migrations_worker.operations.walk import walk

APPS = ("assets", "portfolios", "investments", "migrations_worker")
REFUSALS = (RefuseReverse, RefuseReverseWhile)
# Migrations that refuse to go back at all, and why (the rest go back, some once nothing is lost).
REFUSED = {
    ("assets", "0013_drop_legacy_text_columns"): "the dropped text's last values are not kept",
    ("investments", "0010_alert_uuid_primary_key"): "moving the key back is a migration of its own",
}


def migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [m for key, m in sorted(loader.disk_migrations.items()) if key[0] in APPS]


@pytest.mark.parametrize("migration", migrations(), ids=lambda m: f"{m.app_label}.{m.name}")
def test_every_operation_declares_a_reverse_so_django_never_refuses_without_a_reason(migration):
    assert [op.describe() for op, _ in walk(migration.operations) if not op.reversible] == []


@pytest.mark.parametrize("migration", migrations(), ids=lambda m: f"{m.app_label}.{m.name}")
def test_a_refusal_is_the_last_operation_so_it_speaks_before_anything_is_undone(migration):
    kinds = [isinstance(op, REFUSALS) for op in migration.operations]
    assert kinds == sorted(kinds)  # no operation after a refusal


@pytest.mark.parametrize("migration", migrations(), ids=lambda m: f"{m.app_label}.{m.name}")
def test_a_job_is_enqueued_after_every_schema_change_so_a_run_under_way_stops_the_reverse_first(
    migration,
):
    """EnqueueJob refuses to be taken back while its job has a run under way: it must be reached
    (going back) before anything its job works on is undone."""
    after_enqueue = False
    for operation in migration.operations:
        if isinstance(operation, EnqueueJob):
            after_enqueue = True
        elif after_enqueue:
            assert isinstance(operation, REFUSALS), operation.describe()


def test_exactly_the_migrations_that_cannot_be_taken_back_refuse_without_condition():
    refused = {(m.app_label, m.name) for m in migrations()
               if any(isinstance(op, RefuseReverse) for op in m.operations)}
    assert refused == set(REFUSED)
