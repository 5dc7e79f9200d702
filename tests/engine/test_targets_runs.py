"""A run's life on any target: the same engine, the same workers, any database of the fleet.

`near` is a second database on the first server, `far` one on the second server
(config/settings/test.py); the workers are real: the embedded one (`celery_worker`) where a test
only needs the work done, subprocesses reading the same settings where one is killed or needs an
environment of its own.
Each target keeps its runs' progress beside its rows: nothing of a run on `far` is in `default`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connections
from django_celery_results.models import TaskResult

from migrations_worker.models import BatchStatus, JobBatch, JobRun, RunStatus
from migrations_worker.runs import dispatch
from tests.conftest import database_url
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])
FIXED_100 = {"max_batch_size": 100}


def status_on(using: str, run_id: int) -> str:
    return JobRun.objects.using(using).values_list("status", flat=True).get(pk=run_id)


def batch_in_flight(using: str) -> bool:
    """A worker is inside a batch on `using`'s server: its transaction sleeps in pg_sleep."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                       "AND state = 'active' AND datname = current_database()")
        return cursor.fetchone()[0] > 0


def succeeded_rows(using: str, run_id: int) -> int:
    return sum(JobBatch.objects.using(using).filter(run_id=run_id, status=BatchStatus.SUCCEEDED)
               .values_list("rows_affected", flat=True))


def progress_rows_on_default() -> tuple[int, int]:
    """The engine's rows in `default` (the test database's migrations may have left a run)."""
    return JobRun.objects.count(), JobBatch.objects.count()


def test_a_job_runs_to_the_end_on_a_target_other_than_default_with_real_workers(celery_worker):
    before = progress_rows_on_default()
    make_widgets(2_000, using="far")
    run = dispatch.start(JOB, batch_size=100, options=FIXED_100, using="far")
    wait_until(lambda: status_on("far", run.pk) == RunStatus.FINISHED, 120, message="run finished")

    assert touches_histogram(using="far") == {1: 2_000}
    assert JobRun.objects.using("far").get(pk=run.pk).rows_done == 2_000
    assert succeeded_rows("far", run.pk) == 2_000
    # Nothing of it in the project's own database: its progress lives beside its rows.
    assert progress_rows_on_default() == before
    # Flower (and the stored results) show which database each slice worked on.
    slices = TaskResult.objects.filter(task_name="migrations_worker.run_slice")
    assert slices.exists()
    assert all("'database': 'far'" in r.task_kwargs or '"database": "far"' in r.task_kwargs
               for r in slices)


@pytest.mark.slow
def test_two_targets_on_two_servers_deploy_at_once_with_the_same_workers_each_exactly_once_under_a_worker_killed_mid_batch(  # noqa: E501
        processes):
    before = progress_rows_on_default()
    rows = {"near": 2_000, "far": 2_000}
    for using, count in rows.items():
        make_widgets(count, using=using)
        Knob.objects.using(using).create(name="sleep", value=0.2)
    # Worker processes: w1 is SIGKILLed mid-batch, and beat re-sends its run.
    processes.worker("w1")
    processes.worker("w2")
    processes.beat()
    runs = {using: dispatch.start(JOB, batch_size=100, options=FIXED_100, using=using)
            for using in rows}
    wait_until(lambda: all(JobRun.objects.using(u).get(pk=r.pk).batches_done >= 2
                           for u, r in runs.items()), 60, message="both runs under way")
    wait_until(lambda: batch_in_flight("near") or batch_in_flight("far"), 10, interval=0.02,
               message="a batch in flight")
    processes.kill("w1", signal.SIGKILL)
    for using in rows:
        Knob.objects.using(using).filter(name="sleep").update(value=0.0)
    processes.worker("w3")

    for using, run in runs.items():
        wait_until(lambda u=using, r=run: status_on(u, r.pk) == RunStatus.FINISHED, 120,
                   message=f"the run on {using} finished")
    for using, count in rows.items():
        run = JobRun.objects.using(using).get(pk=runs[using].pk)
        assert touches_histogram(using=using) == {1: count}, using
        assert run.rows_done == count
        assert succeeded_rows(using, run.pk) == count
    assert progress_rows_on_default() == before
    # The killed worker's run was re-sent by beat, and its batch in flight claimed again but
    # applied once (the histograms above).
    resent = [u for u, r in runs.items()
              if r.events.using(u).filter(actor="beat", message__startswith="re-sent").exists()]
    assert resent
    assert any(JobBatch.objects.using(u).filter(run_id=runs[u].pk, attempts=2,
                                                status=BatchStatus.SUCCEEDED).exists()
               for u in resent)


# -- a bounded number of connections, however many targets a worker served -------------------------

TARGETS = 50
WORKER_APP = "mw_targets_worker"


@contextlib.contextmanager
def many_targets(count: int, directory: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """`count` small target databases on the first server, copied from the `near` test
    database (the engine's and the job's tables), listed in a targets file: {alias: url}."""
    template = connections["near"].settings_dict["NAME"]
    connections["near"].close()  # a template must have no session
    server = database_url("default").rsplit("/", 1)[0]
    urls = {f"t{i}": f"{server}/{connections['default'].settings_dict['NAME']}_t{i}"
            for i in range(count)}
    admin = psycopg.connect(database_url("default"), autocommit=True)
    try:
        for url in urls.values():
            name = url.rsplit("/", 1)[1]
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        targets_file = directory / "targets.toml"
        targets_file.write_text("".join(f'[targets.{alias}]\nurl = "{url}"\n'
                                        for alias, url in urls.items()))
        yield urls, targets_file
    finally:
        for url in urls.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        admin.close()


# Run by `manage.py shell` with the targets file: a process that knows the targets, as an
# operator's would, starts a run of the job on each (20 widgets each).
START_ON_EACH = """
from migrations_worker import conf
from migrations_worker.runs import dispatch
from tests.engine_app.support import JOB, make_widgets
for alias in conf.targets():
    if alias.startswith("t"):
        make_widgets(20, using=alias)
        dispatch.start(JOB, batch_size=100, using=alias)
"""


def finished_with_every_widget_touched_once(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM migrations_worker_jobrun")]
        touches = conn.execute("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1")
        return statuses == [RunStatus.FINISHED] and dict(touches.fetchall()) == {1: 20}


def worker_sessions() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                       [WORKER_APP])
        return cursor.fetchone()[0]


@pytest.mark.slow
def test_a_worker_that_served_many_targets_holds_a_bounded_number_of_connections(
        processes, manage, tmp_path):
    with many_targets(TARGETS, tmp_path) as (urls, targets_file):
        processes.env = {**processes.env, "MW_TARGETS_FILE": str(targets_file),
                         "DB_APPLICATION_NAME": WORKER_APP}
        # A worker process: its targets file and application name come by env, its sessions
        # are counted in pg_stat_activity.
        processes.worker("w1")
        started = manage("shell", "-c", START_ON_EACH, env={"MW_TARGETS_FILE": str(targets_file)})
        assert started.returncode == 0, started.stderr
        for alias, url in urls.items():
            wait_until(lambda u=url: finished_with_every_widget_touched_once(u), 120,
                       message=f"the run on {alias} finished")

        time.sleep(1.0)  # idle: the last slice has returned
        assert worker_sessions() <= 3  # 0 measured: every slice's connections are closed


# -- backfill --database ---------------------------------------------------------------------------


def test_backfill_refuses_an_unknown_database_naming_the_declared_ones(manage):
    result = manage("backfill", "status", "--database", "nowhere")
    assert result.returncode == 2, result.stderr
    assert "unknown database 'nowhere'" in result.stderr
    assert "default, far, near" in result.stderr


def test_backfill_works_a_job_on_the_database_it_is_told_and_its_json_names_it(manage):
    make_widgets(300, using="near")
    before = progress_rows_on_default()
    ran = manage("backfill", "run", JOB, "--batch-size", "100", "--database", "near")
    assert ran.returncode == 0, ran.stderr
    assert touches_histogram(using="near") == {1: 300}
    assert progress_rows_on_default() == before

    status = manage("backfill", "status", JOB, "--json", "--database", "near")
    assert status.returncode == 0, status.stderr
    (shown,) = json.loads(status.stdout)
    assert (shown["database"], shown["status"], shown["rows_done"]) == ("near", "finished", 300)
    quarantine = manage("backfill", "quarantine", JOB, "--json", "--database", "near")
    assert json.loads(quarantine.stdout)["database"] == "near"
