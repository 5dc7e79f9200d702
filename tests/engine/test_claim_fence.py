"""A live worker that outlives its lease does not apply its batch a second time. Real Celery
workers on the deliberately non-idempotent test job (each batch adds 1 to `touches`), so a
double application shows in the data as touches = 2.

Two ways a worker outlives its lease, each with what keeps the batch single:

- slowed down *inside* its batch (the `sleep` knob, longer than `lease_seconds`): it holds the
  batch's row lock from the start of its transaction, so the other workers skip the batch
  (`FOR UPDATE SKIP LOCKED`) although its lease has run out; it commits once;
- stalled *between* its claim and its batch (a long GC pause, a starved or frozen container:
  here the worker stops itself with SIGSTOP right after its claim commits): its batch is
  reclaimed by another worker, and when it wakes its commit is fenced: `_process` re-checks,
  under the row lock, that the batch is still RUNNING at the attempt it claimed.
"""

import os
import signal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from migrations_worker.celery import app
from migrations_worker.models import BatchStatus, JobBatch, JobRun, RunStatus
from migrations_worker.runs import control, dispatch, runner
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import Processes, flush_broker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 1.0
# Put on a worker's PYTHONPATH, this stops the worker (SIGSTOP) right after its first claim has
# committed, before it locks the batch: the worst moment for it to freeze.
STOP_AFTER_FIRST_CLAIM = '''
import os
import signal

from celery import signals


@signals.task_prerun.connect(weak=False)
def _stop_after_the_first_claim(**_):
    from migrations_worker.runs import runner

    if getattr(runner.RunWorker._claim_next, "stops", False):
        return
    stopped = []

    def stopping(claim):
        def _claim(self):
            found = claim(self)
            if found is not None and not stopped:
                stopped.append(found)
                os.kill(os.getpid(), signal.SIGSTOP)
            return found

        _claim.stops = True
        return _claim

    # Fresh and reclaimed batches alike come from the one-statement claim.
    runner.RunWorker._claim_next = stopping(runner.RunWorker._claim_next)
'''


def run_status(run_id: int) -> str:
    return JobRun.objects.values_list("status", flat=True).get(pk=run_id)


def batch_in_flight() -> bool:
    """A worker is inside a batch right now: its transaction is sleeping in pg_sleep (on this
    test's database: a test on another xdist worker may be sleeping in its own)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                       "AND state = 'active' AND pid <> pg_backend_pid() "
                       "AND datname = current_database()")
        return cursor.fetchone()[0] > 0


def stopped(pid: int) -> bool:
    """The process is stopped by a signal (state T in /proc)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_a_worker_slowed_past_its_lease_inside_its_batch_keeps_it_and_applies_it_once(processes):
    make_widgets(300)
    Knob.objects.create(name="sleep", value=4.0)  # 4 s inside the batch, 1 s of lease
    # Two worker processes racing for the same batch (a process holds one embedded worker).
    processes.worker("w1")
    processes.worker("w2")
    run = dispatch.start(JOB, batch_size=100, options={"max_batch_size": 100, "lease_seconds": LEASE})
    wait_until(batch_in_flight, 60, interval=0.05, message="the first batch to be sleeping")
    Knob.objects.filter(name="sleep").update(value=0.0)  # the rest is quick
    # A second lane: the idle worker does the other batches, then polls for the first one, whose
    # lease runs out while it sleeps.
    app.send_task(dispatch.RUN_SLICE, (run.pk, JOB, JobRun.objects.get(pk=run.pk).dispatch_epoch, 1))
    wait_until(lambda: run_status(run.pk) == RunStatus.FINISHED, 120, message="the run to finish")
    wait_until(lambda: not batch_in_flight(), 30, message="no batch left sleeping")

    assert touches_histogram() == {1: 300}
    first, *others = JobRun.objects.get(pk=run.pk).batches.order_by("start_key")
    assert (first.status, first.attempts) == (BatchStatus.SUCCEEDED, 1)  # never reclaimed
    assert (first.finished_at - first.started_at).total_seconds() > LEASE + 2  # it outlived its lease
    assert any(b.worker != first.worker for b in others)  # another worker was there, polling
    assert JobRun.objects.get(pk=run.pk).rows_done == 300


@pytest.mark.slow
def test_a_worker_stalled_past_its_lease_after_its_claim_is_fenced_and_the_batch_applied_once(
    processes, tmp_path
):
    make_widgets(500)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STOP_AFTER_FIRST_CLAIM)
    # Worker processes: one is stopped (SIGSTOP) after its claim and resumed; beat is real.
    stalling = Processes({**processes.env,
                          "PYTHONPATH": f"{hook}{os.pathsep}{processes.env['PYTHONPATH']}"}, tmp_path)
    try:
        stale = stalling.worker("stale")
        run = dispatch.start(JOB, batch_size=100, options={"max_batch_size": 100,
                                                           "lease_seconds": LEASE})
        wait_until(lambda: stopped(stale.pid), 60, message="the first worker to stop after its claim")
        batch = JobBatch.objects.get(run=run)
        assert (batch.status, batch.attempts) == (BatchStatus.RUNNING, 1)
        stale_worker = batch.worker

        # Its lease runs out; beat re-sends the run (its heartbeat went stale); a second worker
        # reclaims the batch, and stops in its turn right after that claim.
        current = stalling.worker("current")
        processes.beat()
        wait_until(lambda: stopped(current.pid), 90, message="the second worker to reclaim the batch")
        batch.refresh_from_db()
        assert (batch.status, batch.attempts) == (BatchStatus.RUNNING, 2)
        assert batch.worker != stale_worker

        # Nothing else may run now: no beat, no queued message. The stale worker wakes first.
        processes.kill("beat")
        flush_broker(settings.CELERY_BROKER_URL)
        os.kill(stale.pid, signal.SIGCONT)
        stale_log = tmp_path / "stale.log"
        fenced = f"run={run.pk} batch={batch.pk} fenced"
        applied = f"run={run.pk} job={JOB} batch=({batch.start_key},{batch.end_key}] rows="
        wait_until(lambda: fenced in stale_log.read_text() or applied in stale_log.read_text(), 30,
                   message="the stale worker to be done with its claim")
        assert touches_histogram() == {0: 500}  # it applied nothing...
        assert fenced in stale_log.read_text()  # ...because its commit was fenced

        os.kill(current.pid, signal.SIGCONT)
        processes.beat()
        wait_until(lambda: run_status(run.pk) == RunStatus.FINISHED, 120, message="the run to finish")
    finally:
        stalling.stop_all()

    assert touches_histogram() == {1: 500}
    batch.refresh_from_db()
    assert (batch.status, batch.attempts) == (BatchStatus.SUCCEEDED, 2)
    run.refresh_from_db()
    assert run.rows_done == 500
    assert not run.batches.exclude(status=BatchStatus.SUCCEEDED).exists()


def test_a_message_of_an_older_dispatch_is_fenced_and_touches_nothing():
    """Every dispatch bumps the run's epoch; a slice message of an earlier one (a re-sent task
    delivered late, a worker's own re-enqueue) stops at once: it claims no batch, writes no row
    and does not conclude the run it no longer works."""
    make_widgets(300)
    run = control.create_run(JOB, options={"batch_size": 100, "max_batch_size": 100})
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, dispatch_epoch=2)

    stale = runner.RunWorker(run.pk, epoch=1, name="stale").work()
    assert (stale.kind, touches_histogram(), JobBatch.objects.count()) == (runner.Kind.FENCED,
                                                                           {0: 300}, 0)
    assert run_status(run.pk) == RunStatus.RUNNING

    current = runner.RunWorker(run.pk, epoch=2, name="current").work()
    assert (current.kind, touches_histogram(), run_status(run.pk)) == (runner.Kind.DONE, {1: 300},
                                                                       RunStatus.FINISHED)
