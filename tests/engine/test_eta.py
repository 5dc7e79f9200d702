"""Each run keeps the ETA it showed at 10% and 50%, taken by the batch that passes each, however
the run is worked (inline, Celery workers), and once it finishes how far off each was."""

from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from bench import report as bench_report
from bench.contenders import eta_errors as bench_eta_errors
from migrations_worker.models import BatchStatus, JobBatch, JobRun, JobRunCheckpoint, RunStatus
from migrations_worker.runs import control, dispatch, totals
from migrations_worker.runs.progress import eta_errors
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.scratch import ScratchDatabase
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
TEN_BATCHES = {"batch_size": 100, "min_batch_size": 100, "max_batch_size": 100}


@pytest.fixture(autouse=True)
def no_runs():
    """From no runs (creating the test database enqueued one)."""
    JobRun.objects.all().delete()


def assert_taken_by_the_batch_that_passed_each(run: JobRun) -> None:
    ten, fifty = run.checkpoints.order_by("checkpoint")
    assert (ten.checkpoint, fifty.checkpoint) == (10, 50)
    # 1,000 rows in batches of 100: the first batch makes 10%, the fifth 50%.
    assert (ten.percent, fifty.percent) == (10.0, 50.0)
    batches = list(run.batches.order_by("start_key"))
    assert batches[0].finished_at <= ten.at < batches[1].finished_at
    assert batches[4].finished_at <= fifty.at < batches[5].finished_at
    assert ten.eta_seconds > 0 and fifty.eta_seconds > 0
    errors = eta_errors(run)
    assert [e.checkpoint for e in errors] == [10, 50]
    for error, point in zip(errors, (ten, fifty), strict=True):
        assert error.predicted_seconds == point.eta_seconds
        assert error.actual_seconds == pytest.approx((run.finished_at - point.at).total_seconds())
        assert error.error_ratio == pytest.approx((point.eta_seconds - error.actual_seconds)
                                                  / error.actual_seconds)


def test_an_inline_run_keeps_its_eta_at_10_and_50_percent_and_its_error_at_the_end(
    client, test_database_url
):
    make_widgets(1_000)
    Knob.objects.create(name="sleep", value=0.03)
    control.create_run(JOB, options=TEN_BATCHES)
    call_command("backfill", "run", JOB)
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FINISHED
    assert_taken_by_the_batch_that_passed_each(run)
    # An even pace (the same sleep every batch): the ETA at 50% is near the truth.
    assert abs(eta_errors(run)[1].error_ratio) < 0.6

    # The benchmark reads the same errors from the tables, without Django.
    with psycopg.connect(test_database_url, autocommit=True) as conn:
        bench_errors = bench_eta_errors(conn, run.pk)
    assert {mark: e["error_ratio"] for mark, e in bench_errors.items()} == {
        str(e.checkpoint): e.error_ratio for e in eta_errors(run)}
    assert bench_report.eta_error(bench_errors) == " / ".join(
        f"{e.error_ratio:+.0%}" for e in eta_errors(run))

    client.force_login(User.objects.create_superuser("eta"))  # force_login: no password needed
    payload = client.get(f"/ops/runs/{run.pk}.json").json()
    assert [e["checkpoint"] for e in payload["eta_errors"]] == [10, 50]
    assert payload["eta_errors"][1]["error_ratio"] == pytest.approx(
        eta_errors(run)[1].error_ratio, abs=1e-4)


def test_a_run_worked_by_celery_workers_keeps_them_too(processes):
    make_widgets(1_000)
    Knob.objects.create(name="sleep", value=0.03)
    # Two worker processes, one lane each (a process holds one embedded worker).
    processes.worker("w1")
    processes.worker("w2")
    run = dispatch.start(JOB, workers=2, options=TEN_BATCHES)
    wait_until(lambda: JobRun.objects.get(pk=run.pk).status == RunStatus.FINISHED, 90,
               message="the run to finish")
    run.refresh_from_db()
    assert touches_histogram() == {1: 1_000}
    # Two lanes, one checkpoint each: taken once, by the fold that passed it. A fold counts the
    # batches each lane finished since the last one (at most one per lane): 10% is passed at 10
    # or 20, 50% at 50 or 60.
    assert JobRunCheckpoint.objects.filter(run=run).count() == 2
    ten, fifty = run.checkpoints.order_by("checkpoint")
    assert ten.percent in (10.0, 20.0) and fifty.percent in (50.0, 60.0)
    assert run.started_at < ten.at < fifty.at < run.finished_at
    assert [e.checkpoint for e in eta_errors(run)] == [10, 50]


def test_a_run_still_under_way_has_no_error_yet_and_a_fold_while_paused_takes_no_checkpoint():
    make_widgets(1_000)
    run = control.create_run(JOB, options=TEN_BATCHES)
    JobRun.objects.filter(pk=run.pk).update(
        status=RunStatus.PAUSED, started_at=timezone.now() - timedelta(seconds=10))
    # A batch that succeeded just before the pause: folding it takes the run past 50%.
    JobBatch.objects.create(run=run, start_key=0, end_key=600, status=BatchStatus.SUCCEEDED,
                            attempts=1, batch_size=600, rows_affected=600, folded=False)
    totals.fold(run.pk, using="default")
    run.refresh_from_db()
    assert run.rows_done == 600
    assert not JobRunCheckpoint.objects.filter(run=run).exists()
    assert eta_errors(run) == []

    # Running, the same fold takes both (the ETA comes from the 10 s it took to get there).
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, rows_done=0)
    JobBatch.objects.filter(run=run).update(folded=False)
    totals.fold(run.pk, using="default")
    assert sorted(JobRunCheckpoint.objects.filter(run=run).values_list("checkpoint", flat=True)) == [
        10, 50]


def test_migrating_one_app_brings_the_engines_own_tables_up_first_so_its_runs_keep_checkpoints():
    """A migration that enqueues a job can come before the engine's latest migration in the
    graph's order: `migrate <app>` applies the engine's own migrations first, so the engine's
    code never runs against older tables of its own (the claim writes a column of 0003, the
    checkpoints need 0002)."""
    db = ScratchDatabase(f"{connection.settings_dict['NAME']}_eta_engine_first").create()
    try:
        db.manage("migrate", "engine_app", "-v", "0")
        assert db.scalar("SELECT to_regclass('migrations_worker_jobruncheckpoint')") is not None
        db.execute("DELETE FROM migrations_worker_jobrunevent")
        db.execute("DELETE FROM migrations_worker_jobrun")
        db.execute("INSERT INTO engine_app_widget (id, touches, value) "
                   "SELECT g, 0, g FROM generate_series(1, 1000) g")
        db.manage("backfill", "run", JOB, "--option", "batch_size=100", "--option",
                  "max_batch_size=100", "--option", "min_batch_size=100")
        assert db.rows("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1") == [(1, 1000)]
        assert db.scalar("SELECT status FROM migrations_worker_jobrun") == "finished"
        assert db.rows("SELECT checkpoint FROM migrations_worker_jobruncheckpoint "
                       "ORDER BY checkpoint") == [(10,), (50,)]
    finally:
        db.drop()
