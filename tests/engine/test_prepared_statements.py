"""A batch's own statements are prepared: parsed and planned once per worker session, not once
per batch (runs/prepared.py). Read from the session's own `pg_prepared_statements`."""

from __future__ import annotations

import pytest
from django.db import connection

from migrations_worker.models import BatchStatus, JobRun, RunStatus
from migrations_worker.runs import drive
from tests.engine_app.jobs import TouchWidgets
from tests.engine_app.support import JOB, make_widgets, touches_histogram

pytestmark = pytest.mark.django_db(transaction=True)

ROWS, BATCH = 1_000, 50


@pytest.fixture(autouse=True)
def a_new_session_and_no_runs():
    """Prepared statements belong to a session: each test starts on a new one, with no run of
    the test database's own migrations around."""
    JobRun.objects.all().delete()
    connection.close()


def work_every_batch_here() -> JobRun:
    """The whole run in this process, on this test's session, in batches of exactly BATCH."""
    make_widgets(ROWS)
    return drive.run_inline(JOB, actor="test", worker_name="test", message="inline",
                            batch_size=BATCH,
                            options={"min_batch_size": BATCH, "max_batch_size": BATCH})


def prepared_here() -> list[tuple[str, int, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return cursor.fetchall()


def named(statements, *fragments: str) -> list[tuple[str, int, int]]:
    return [s for s in statements if all(f in s[0] for f in fragments)]


def test_the_claim_fence_and_outcome_of_every_batch_are_planned_once_per_session():
    run = work_every_batch_here()
    assert run.status == RunStatus.FINISHED and run.batches_done == ROWS // BATCH
    assert touches_histogram() == {1: ROWS}
    statements = prepared_here()
    claims = named(statements, "WITH run AS", "FOR UPDATE SKIP LOCKED")
    fences = named(statements, "FROM migrations_worker_jobbatch", "FOR UPDATE", "attempts = $2")
    outcomes = named(statements, "SET status = 'succeeded'")
    assert claims and len(fences) == 1 and len(outcomes) == 1, statements
    # Run once per batch, each on a plan PostgreSQL keeps for the session after its first five.
    for _, generic, custom in fences + outcomes:
        assert generic + custom == ROWS // BATCH and generic >= ROWS // BATCH - 5
    assert sum(generic + custom for _, generic, custom in claims) >= ROWS // BATCH
    # A job that does not opt in sends its statements as before.
    assert not named(statements, "engine_app_widget SET touches"), statements


def test_a_job_that_opts_in_has_its_own_statements_prepared_too(monkeypatch):
    monkeypatch.setattr(TouchWidgets, "prepare_statements", True)
    run = work_every_batch_here()
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: ROWS}
    (update,) = named(prepared_here(), "UPDATE engine_app_widget SET touches = touches + 1")
    assert update[1] + update[2] == ROWS // BATCH and update[1] >= ROWS // BATCH - 5


def test_a_site_behind_a_pooler_turns_them_off_and_nothing_is_prepared(monkeypatch, settings):
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "PREPARED_STATEMENTS": False}
    monkeypatch.setattr(TouchWidgets, "prepare_statements", True)
    run = work_every_batch_here()
    assert run.status == RunStatus.FINISHED
    assert not run.batches.exclude(status=BatchStatus.SUCCEEDED).exists()
    assert touches_histogram() == {1: ROWS}
    assert prepared_here() == []
