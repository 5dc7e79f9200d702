"""The migration operations that gate schema changes on data jobs."""

import pytest
from django.core.management import call_command
from django.db import connection

from migrations_worker.exceptions import JobNotFinished
from migrations_worker.models import JobRun, RunStatus
from tests.engine_app.support import JOB, LATEST, make_widgets, migrate_to, touches_histogram

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def before_the_job():
    """engine_app migrated back to before EnqueueJob, with no runs; restored afterwards."""
    migrate_to(("engine_app", "0001_initial"))
    JobRun.objects.all().delete()
    yield
    migrate_to(LATEST)


def test_gate_finishes_a_small_remainder_inline_so_migrate_runs_in_one_go(before_the_job):
    make_widgets(800)
    migrate_to(LATEST)
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: 800}
    assert run.events.filter(actor="migrate").exists()


def test_gate_stops_a_big_remainder_with_progress_and_the_commands_to_finish_it(before_the_job):
    make_widgets(5_000)
    with pytest.raises(JobNotFinished) as stopped:
        migrate_to(LATEST)
    message = str(stopped.value)
    assert stopped.value.job_name == JOB
    assert f"data job {JOB} (needed by engine_app) is not finished" in message
    assert "0 of ~5,000 rows" in message
    assert f"python manage.py backfill status {JOB} --watch" in message
    assert f"python manage.py backfill run {JOB}" in message
    assert touches_histogram() == {0: 5_000}  # the gate did not do the big job under migrate

    call_command("backfill", "run", JOB)
    migrate_to(LATEST)  # now the gate opens
    assert touches_histogram() == {1: 5_000}


def test_gate_refuses_to_run_inside_an_atomic_migration(before_the_job):
    from django.db import transaction

    from migrations_worker.exceptions import InsideTransaction
    from migrations_worker.operations import RequireJob

    with (
        transaction.atomic(),
        connection.schema_editor(atomic=True) as editor,
        pytest.raises(InsideTransaction, match="atomic = False"),
    ):
        RequireJob(JOB).database_forwards("engine_app", editor, None, None)


def test_enqueue_starts_a_job_on_its_own_lanes_unless_the_migration_says_otherwise():
    from migrations_worker.operations import EnqueueJob

    # The deploy's longest job takes both of a deploy's workers; the others one each.
    assert EnqueueJob("alerts_uuid").lanes == 2
    assert EnqueueJob("legacy_columns").lanes == 1
    assert EnqueueJob("alerts_uuid", workers=1).lanes == 1
    # A migration written before jobs had lanes still reads as it did.
    assert EnqueueJob("alerts_uuid").deconstruct() == ("EnqueueJob", [], {"job_name": "alerts_uuid"})


def test_a_run_enqueued_by_a_migration_gets_the_jobs_lanes(before_the_job, monkeypatch):
    from tests.engine_app.jobs import TouchWidgets

    monkeypatch.setattr(TouchWidgets, "lanes", 3)
    make_widgets(800)
    migrate_to(LATEST)  # the gate finishes the small remainder inline
    assert JobRun.objects.get(job_name=JOB).workers == 3
