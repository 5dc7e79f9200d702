"""The engine with real Celery workers: crashes, parallel workers and a broker restart with
worker processes (killed, racing, on a Redis of their own), operator controls with the embedded
worker (`celery_worker`). Every test checks the data itself: each row touched once."""

import itertools
import signal
import time

import pytest
from django.db import connection

from migrations_worker.models import BatchStatus, JobRun, RunStatus
from migrations_worker.runs import dispatch
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def run_status(run_id: int) -> str:
    return JobRun.objects.values_list("status", flat=True).get(pk=run_id)


def batch_in_flight() -> bool:
    """A worker is inside a batch right now: its transaction is sleeping in pg_sleep."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
            "AND state = 'active' AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.slow
def test_worker_killed_mid_batch_resumes_by_itself_with_every_row_done_once(processes):
    make_widgets(3_000)
    Knob.objects.create(name="sleep", value=0.3)
    # A worker process: SIGKILLed mid-batch; beat, a process too, must notice.
    processes.worker("w1")
    processes.beat()
    run = dispatch.start(JOB, batch_size=100, options={"max_batch_size": 100})
    wait_until(lambda: JobRun.objects.get(pk=run.pk).batches_done >= 3, 60, message="3 batches")
    wait_until(batch_in_flight, 10, interval=0.02, message="a batch in flight")
    processes.kill("w1", signal.SIGKILL)
    killed_at = JobRun.objects.get(pk=run.pk).batches_done

    Knob.objects.filter(name="sleep").update(value=0.0)
    processes.worker("w2")  # a fresh worker; nobody tells it about the run: beat must
    wait_until(lambda: run_status(run.pk) == RunStatus.FINISHED, 120, message="run finished")

    run.refresh_from_db()
    assert killed_at < 30
    assert touches_histogram() == {1: 3_000}
    assert run.rows_done == 3_000
    assert run.events.filter(actor="beat", message__startswith="re-sent").exists()
    # The batch that was in flight was claimed twice but applied once.
    assert run.batches.filter(attempts=2, status=BatchStatus.SUCCEEDED).exists()


@pytest.mark.parametrize("workers", [2, 3])
def test_several_workers_on_one_run_do_each_batch_exactly_once(processes, workers):
    make_widgets(6_000)
    Knob.objects.create(name="sleep", value=0.02)
    # Worker processes racing for one run (a process holds one embedded worker).
    for n in range(workers):
        processes.worker(f"w{n}")
    run = dispatch.start(JOB, batch_size=100, workers=workers, options={"max_batch_size": 100})
    wait_until(lambda: run_status(run.pk) == RunStatus.FINISHED, 120, message="run finished")

    assert touches_histogram() == {1: 6_000}
    batches = list(JobRun.objects.get(pk=run.pk).batches.order_by("start_key"))
    assert all(b.attempts == 1 for b in batches)
    for before, after in itertools.pairwise(batches):
        assert after.start_key == before.end_key
    assert len({b.worker.split("/")[0] for b in batches}) == workers
    # Each slice's outcome is stored by django-celery-results, for the admin and Flower.
    from django_celery_results.models import TaskResult

    results = TaskResult.objects.filter(task_name="migrations_worker.run_slice", status="SUCCESS")
    assert results.exists()
    assert all(f"'run_id': {run.pk}" in r.result or f'"run_id": {run.pk}' in r.result
               for r in results)


def test_the_celery_worker_fixture_is_celerys_embedded_worker_on_the_projects_app_and_queue(
        celery_worker):
    from celery.contrib.testing.worker import TestWorkController

    from migrations_worker import conf
    from migrations_worker.celery import app

    # Not pytest-celery's Docker worker: a thread of this process, serving the engine's queue.
    assert isinstance(celery_worker, TestWorkController)
    assert celery_worker.app is app
    assert {queue.name for queue in celery_worker.consumer.task_consumer.queues} == {conf.get("QUEUE")}
    make_widgets(300)
    run = dispatch.start(JOB, batch_size=100, options={"max_batch_size": 100})
    wait_until(lambda: run_status(run.pk) == RunStatus.FINISHED, 60, message="run finished")
    assert touches_histogram() == {1: 300}
    # Worked by the worker's slices (lane 0), not inline by the caller.
    assert {b.worker.rsplit("/", 1)[1] for b in JobRun.objects.get(pk=run.pk).batches.all()} == {
        "lane0"}


def test_pause_resume_and_cancel_through_the_cli_are_honoured_between_batches(celery_worker, manage):
    make_widgets(10_000)
    Knob.objects.create(name="sleep", value=0.1)
    started = manage("backfill", "start", JOB, "--batch-size", "100",
                     "--option", "max_batch_size=100")
    assert started.returncode == 0, started.stderr
    # The newest: first in a fresh test database, the migrations' own (finished) run is there too.
    run = JobRun.objects.filter(job_name=JOB).latest("pk")
    wait_until(lambda: JobRun.objects.get(pk=run.pk).batches_done >= 2, 60)

    assert manage("backfill", "pause", JOB).returncode == 0
    wait_until(lambda: run_status(run.pk) == RunStatus.PAUSED, 30, message="paused")
    done_when_paused = JobRun.objects.get(pk=run.pk).batches_done
    time.sleep(1.0)
    assert JobRun.objects.get(pk=run.pk).batches_done == done_when_paused

    assert manage("backfill", "resume", JOB).returncode == 0
    wait_until(lambda: JobRun.objects.get(pk=run.pk).batches_done > done_when_paused + 2, 60)
    assert manage("backfill", "cancel", JOB).returncode == 0
    wait_until(lambda: run_status(run.pk) == RunStatus.CANCELLED, 30, message="cancelled")
    statuses = list(run.events.order_by("id").values_list("to_status", flat=True))
    assert statuses[:1] == ["pending"]
    for expected in ["running", "pausing", "paused", "cancelling", "cancelled"]:
        assert expected in statuses
    # Cancelled means stopped, not undone: what was done stays done exactly once.
    hist = touches_histogram()
    assert set(hist) <= {0, 1} and hist.get(1, 0) == JobRun.objects.get(pk=run.pk).rows_done


@pytest.fixture
def private_redis(tmp_path):
    from tests.workers import PrivateRedis, free_port

    server = PrivateRedis(tmp_path, free_port())
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_redis_restart_mid_run_loses_no_progress(processes, manage, private_redis):
    processes.env["TEST_REDIS_URL"] = private_redis.url
    make_widgets(8_000)
    Knob.objects.create(name="sleep", value=0.05)
    # A worker process and beat on a Redis of their own (by env), restarted under them.
    processes.worker("w1")
    processes.beat()
    started = manage("backfill", "start", JOB, "--batch-size", "100",
                     "--option", "max_batch_size=100", env={"TEST_REDIS_URL": private_redis.url})
    assert started.returncode == 0, started.stderr
    run = JobRun.objects.get(job_name=JOB)
    wait_until(lambda: JobRun.objects.get(pk=run.pk).batches_done >= 5, 60)

    private_redis.stop()  # every queued message is gone with it
    done_while_down = JobRun.objects.get(pk=run.pk).batches_done
    time.sleep(2)
    private_redis.start()

    wait_until(lambda: run_status(run.pk) == RunStatus.FINISHED, 120, message="run finished")
    run.refresh_from_db()
    assert done_while_down < run.batches_done
    assert touches_histogram() == {1: 8_000}
    assert run.rows_done == 8_000
