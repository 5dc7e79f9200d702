"""The engine without Celery: the inline runner, batching, verification, failures, bad input."""

import itertools
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from migrations_worker.models import BatchStatus, JobBatch, JobRun, QuarantinedKey, Resolution, RunStatus
from migrations_worker.runs import control, runner
from tests.engine_app.models import Knob, Widget
from tests.engine_app.support import JOB, make_widgets, touches_histogram

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_runs_from_the_test_databases_own_migrate():
    """Creating the test database ran engine_app's EnqueueJob/RequireJob; a test that runs
    first would see that run. Every test here starts from no runs at all."""
    JobRun.objects.all().delete()


def test_inline_run_touches_every_row_exactly_once(capsys):
    make_widgets(2_500)
    call_command("backfill", "run", JOB, "--batch-size", "100")
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: 2_500}
    assert run.rows_done == 2_500
    assert run.report == {"widgets_touched": 2_500}


def test_batches_are_contiguous_keyset_ranges_with_no_gap_or_overlap():
    make_widgets(3_000)
    with connection.cursor() as cursor:  # sparse keys: the ranges must still cover everything
        cursor.execute("DELETE FROM engine_app_widget WHERE id % 7 = 0")
    call_command("backfill", "run", JOB, "--batch-size", "50")
    run = JobRun.objects.get(job_name=JOB)
    batches = list(run.batches.order_by("start_key"))
    assert batches[0].start_key == run.min_key - 1
    assert batches[-1].end_key == run.max_key
    for before, after in itertools.pairwise(batches):
        assert after.start_key == before.end_key
    assert all(b.status == BatchStatus.SUCCEEDED and b.attempts == 1 for b in batches)
    assert set(touches_histogram()) == {1}


def test_batch_size_grows_toward_the_target_duration_within_its_clamp():
    make_widgets(20_000)
    call_command("backfill", "run", JOB, "--batch-size", "10")
    run = JobRun.objects.get(job_name=JOB)
    sizes = list(run.batches.order_by("start_key").values_list("batch_size", flat=True))
    # Fast batches: each step may at most double, and the size never leaves [min, max].
    assert sizes[0] == 10
    assert max(sizes) > 10
    for before, after in itertools.pairwise(sizes):
        assert after <= before * 2
        assert 10 <= after <= 100_000


def test_rows_inserted_after_the_run_started_are_covered_by_the_catch_up_pass():
    make_widgets(1_000)
    run = control.create_run(JOB, batch_size=100)
    assert run.max_key == 1_000
    make_widgets(250, first_id=1_001)  # arrive after the bounds were frozen
    call_command("backfill", "run", JOB)
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert run.max_key == 1_250
    assert touches_histogram() == {1: 1_250}
    assert run.events.filter(message__startswith="catch-up pass").exists()


def test_verification_query_not_the_batches_decides_finished():
    make_widgets(500, first_id=100)
    control.create_run(JOB, batch_size=100)
    make_widgets(1, first_id=5)  # below the frozen bounds: no batch or catch-up covers it
    with pytest.raises(CommandError) as failed:
        call_command("backfill", "run", JOB)
    assert failed.value.returncode == 4
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FAILED
    assert "verification failed: 1 row(s)" in run.error
    assert all(b.status == BatchStatus.SUCCEEDED for b in run.batches.all())


def test_retry_after_a_failed_verification_walks_the_keys_it_names_and_finishes_the_run(capsys):
    """The way out the verification's message names must get the operator out: every batch
    succeeded, yet rows still need the job (here one below the frozen bounds; in life, rows a
    writer changed behind the job). Retry walks the batches over those keys, only those, and the
    run finishes verified."""
    make_widgets(500, first_id=100)
    control.create_run(JOB, batch_size=100)
    make_widgets(1, first_id=5)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB)
    run = JobRun.objects.get(job_name=JOB)
    assert f"`backfill retry {JOB}` walks the keys they are in again" in run.error

    call_command("backfill", "retry", JOB)
    retried = run.events.filter(to_status=RunStatus.RUNNING).last().message
    assert "retry: verification had failed; walking keys [5, 5] again (1 batch(es)" in retried
    call_command("backfill", "run", JOB)
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: 501}  # the one row walked, none of the others again


def test_a_failing_key_is_cut_down_to_and_quarantined_after_its_attempts_and_retry_walks_it_again():
    """The batch holding the failing key is cut in two until the key stands alone; that one-key
    batch fails its 3 attempts and is quarantined, every other row is done, and the run fails at
    the end of its walk naming the key. Fixed, a retry walks that key only, and the run finishes."""
    make_widgets(1_000)
    Knob.objects.create(name="fail_at", value=450)
    with pytest.raises(CommandError) as failed:
        call_command("backfill", "run", JOB, "--batch-size", "100")
    assert failed.value.returncode == 4
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FAILED
    bad = run.batches.get(status=BatchStatus.QUARANTINED)
    assert (bad.start_key, bad.end_key, bad.attempts) == (449, 450, 3)
    assert "injected failure at key 450" in bad.error
    assert set(run.batches.exclude(pk=bad.pk).values_list("status", flat=True)) == {
        BatchStatus.SUCCEEDED}
    key = QuarantinedKey.objects.get(run=run)
    assert (key.key, key.attempts, key.resolution) == (450, 3, Resolution.OPEN)
    assert "RuntimeError: injected failure at key 450" in key.error
    assert run.error.startswith("1 quarantined key(s) left open: key 450 (RuntimeError: "
                                "injected failure at key 450)")
    assert touches_histogram() == {1: 999, 0: 1}
    assert not Widget.objects.filter(id=450, touches__gt=0).exists()

    Knob.objects.filter(name="fail_at").delete()
    call_command("backfill", "retry", JOB)
    call_command("backfill", "run", JOB)
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: 1_000}
    assert run.batches.get(end_key=450).status == BatchStatus.SUCCEEDED
    assert QuarantinedKey.objects.get(run=run).resolution == Resolution.RETRIED


def running_in_batches_of_100(**options) -> tuple[JobRun, runner.RunWorker]:
    """300 widgets and a running run over them in batches of exactly 100, and a worker for it."""
    make_widgets(300)
    run = control.create_run(JOB, options={"batch_size": 100, "min_batch_size": 100,
                                           "max_batch_size": 100, **options})
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    return run, runner.RunWorker(run.pk, name="test")


def test_a_batch_whose_worker_vanished_is_claimed_again_and_after_its_last_attempt_fails_the_run():
    """The one claim statement takes a batch whose lease ran out before any fresh keys, counting
    an attempt; once its worker has vanished on every attempt it is not claimed again: the batch
    fails, and the run with it, saying so."""
    run, worker = running_in_batches_of_100(max_attempts=2)
    first = worker._claim_next()
    expired = JobBatch.objects.filter(pk=first.batch_id)
    expired.update(lease_until=timezone.now() - timedelta(seconds=1))  # its worker vanished

    again = worker._claim_next()
    assert (again.batch_id, again.start, again.end, again.attempt) == (first.batch_id, 0, 100, 2)
    expired.update(lease_until=timezone.now() - timedelta(seconds=1))  # vanished once more
    assert worker._claim_next() is None

    batch = expired.get()
    assert (batch.status, batch.attempts) == (BatchStatus.FAILED, 2)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "batch (0, 100] failed after 2 attempt(s): its worker was lost on every attempt"
    assert run.batches.count() == 1  # no fresh batch was cut meanwhile
    assert touches_histogram() == {0: 300}


def test_a_batch_that_fails_with_no_row_in_its_range_fails_the_run_there_is_no_key_to_set_aside():
    """Rows deleted between the claim and the batch, and the job still fails there: no key can
    stand for the failure (it is the job's, not a row's), so after its attempts the batch fails,
    and the run with it, saying so."""
    run, worker = running_in_batches_of_100(retry_backoff_seconds=0)
    claim = worker._claim_next()
    assert (claim.start, claim.end) == (0, 100)
    Widget.objects.filter(id__lte=100).delete()
    Knob.objects.create(name="fail_at", value=50)

    for attempt in (1, 2, 3):
        assert claim.attempt == attempt and (claim.start, claim.end) == (0, 100)  # never cut
        worker._process(claim)
        if attempt < 3:
            claim = worker._claim_next()
    batch = run.batches.get(pk=claim.batch_id)
    assert (batch.status, batch.attempts) == (BatchStatus.FAILED, 3)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == ("batch (0, 100] failed after 3 attempt(s): RuntimeError: injected failure "
                         "at key 50 (with no row in its range: no bad row to set aside, the job "
                         "itself fails)")
    assert batch.error in run.error
    assert not QuarantinedKey.objects.filter(run=run).exists()
    assert touches_histogram() == {0: 200}  # nothing else was walked
