"""Exactly once, seen where it happens: a batch's data change and its progress commit in one
transaction (the rows carry that transaction's id), and a worker killed after its batch wrote
but before it committed leaves nothing behind: the batch is done again, once.

The test job adds 1 to each widget it covers, so a batch applied twice shows as a 2.
"""

import signal
import threading

import pytest
from django.db import connection, connections

from migrations_worker.models import BatchStatus, JobBatch, JobRun, RunStatus
from migrations_worker.runs import control, dispatch, runner
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def rows(query: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def scalar(query: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def test_a_batchs_rows_commit_in_the_transaction_that_records_the_batch_done():
    """Read as each batch commits: the next claim folds the batch's figures into the run, which
    rewrites the batch row (and its xmin), so the witness is taken before it."""
    make_widgets(1_500)
    run = control.create_run(JOB, options={"batch_size": 100, "max_batch_size": 100})
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    worker = runner.RunWorker(run.pk, name="witness")
    checked = 0
    while (claim := worker._claim_next()) is not None:
        worker._process(claim)
        written_by = {r[0] for r in rows("SELECT DISTINCT xmin::text FROM engine_app_widget "
                                         "WHERE id > %s AND id <= %s", [claim.start, claim.end])}
        recorded_by = scalar("SELECT xmin::text FROM migrations_worker_jobbatch "
                             "WHERE id = %s AND status = 'succeeded'", [claim.batch_id])
        assert written_by == {recorded_by}, (claim, written_by, recorded_by)
        checked += 1
    assert checked == 15
    assert touches_histogram() == {1: 1_500}


def written_and_uncommitted() -> int | None:
    """The pid of a worker's session that has written (it holds a transaction id) and now
    sleeps after the write, before the engine commits: where a kill must land."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                       "AND state = 'active' AND backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
                       "AND datname = current_database()")
        row = cursor.fetchone()
        return row[0] if row else None


@pytest.mark.slow
def test_a_worker_killed_after_its_batch_wrote_and_before_it_committed_leaves_nothing_and_the_batch_is_done_once(  # noqa: E501
    processes,
):
    make_widgets(2_000)
    Knob.objects.create(name="sleep_after", value=30.0)
    # A worker process: SIGKILLed between its batch's write and its commit; beat is real.
    processes.worker("w1")
    processes.beat()
    run = dispatch.start(JOB, batch_size=100, options={"max_batch_size": 100})
    wait_until(lambda: written_and_uncommitted() is not None, 60, interval=0.05,
               message="a batch that wrote and has not committed")
    batch = JobBatch.objects.get(run=run, status=BatchStatus.RUNNING)
    in_batch = ("SELECT count(*) FROM engine_app_widget WHERE id > %s AND id <= %s "
                "AND touches > 0")
    assert scalar(in_batch, [batch.start_key, batch.end_key]) == 0  # written, not committed
    processes.kill("w1", signal.SIGKILL)
    wait_until(lambda: written_and_uncommitted() is None, 30, message="the session gone")
    assert scalar(in_batch, [batch.start_key, batch.end_key]) == 0  # rolled back with it

    Knob.objects.filter(name="sleep_after").update(value=0.0)
    processes.worker("w2")
    wait_until(lambda: JobRun.objects.get(pk=run.pk).status == RunStatus.FINISHED, 120,
               message="run finished")
    assert touches_histogram() == {1: 2_000}
    batch.refresh_from_db()
    assert (batch.status, batch.attempts) == (BatchStatus.SUCCEEDED, 2)


def test_a_batch_that_commits_while_the_last_worker_concludes_counts_in_the_runs_totals(monkeypatch):
    """A worker slowed past its lease keeps its batch (the row lock) and commits it while the
    last other worker, out of keys, concludes the run: the run's totals must include it (CI
    once saw a run finish with 200 of 300 rows counted)."""
    make_widgets(200)
    run = control.create_run(JOB, options={"batch_size": 100, "max_batch_size": 100})
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    slow, last = runner.RunWorker(run.pk, name="slow"), runner.RunWorker(run.pk, name="last")
    held = slow._claim_next()
    last._process(last._claim_next())
    assert last._claim_next() is None  # no fresh keys left: the last worker concludes

    def slow_batch_commits():
        slow._process(held)
        connections.close_all()

    real_fold, folds = runner.fold, []

    def fold_then_the_slow_batch_commits(run_id: int, *, using: str) -> None:
        real_fold(run_id, using=using)
        if not folds:  # right after the conclusion's first fold
            folds.append(run_id)
            committer = threading.Thread(target=slow_batch_commits)
            committer.start()
            committer.join()

    monkeypatch.setattr(runner, "fold", fold_then_the_slow_batch_commits)
    assert last._finalize().status == RunStatus.FINISHED
    run.refresh_from_db()
    assert (run.rows_done, run.batches_done) == (200, 2)
    assert touches_histogram() == {1: 200}
