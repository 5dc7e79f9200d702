"""The whole online migration survives what production does to it.

A seeded database is migrated by the deploy step (`migrate_online --wait`, rerun whenever a fault
kills it) with Celery workers and beat, under the live application load, while faults land at
seeded moments: workers SIGKILLed and replaced, Redis restarted (its queue lost), the jobs' and
the deploy's database sessions terminated, PostgreSQL restarted once, and long transactions held
on the tables the migrations need. Afterwards the schema is the fixed one, every row is
accounted for, and the jobs' results equal an undisturbed run's on the same seed.

CI runs three seeds at the small size (`make test`); a larger run by hand:

    CHAOS_SIZE=medium CHAOS_SEEDS=7 pytest -m chaos -s tests/chaos/test_chaos.py
"""

from __future__ import annotations

import os
import shutil

import pytest
from psycopg import sql

from tests.chaos import faults
from tests.chaos.database import engine_database
from tests.chaos.harness import LOCK_TIMEOUT_S, ChaosRun
from tests.chaos.invariants import ORACLE_CHECK
from tests.chaos.services import PrivatePostgres, traversable_tmpdir
from tests.engine_app.support import JOB
from tests.scratch import Database
from tests.workers import PrivateRedis, Processes, flush_broker, free_port, wait_until

CHAOS_SIZE = os.environ.get("CHAOS_SIZE", "small")
CHAOS_SEEDS = [int(s) for s in os.environ.get("CHAOS_SEEDS", "1,2,3").split(",") if s.strip()]
# A statement of the application may queue behind a DDL step for its lock_timeout, no longer;
# the margin is for a two-core machine running PostgreSQL, workers, beat, the deploy and the load.
MAX_LOAD_LATENCY_S = LOCK_TIMEOUT_S + 1.5


@pytest.fixture(scope="module")
def servers():
    """A PostgreSQL and a Redis of this module's own: the faults restart them."""
    pg = PrivatePostgres().start()
    redis = PrivateRedis(traversable_tmpdir("chaos-redis-"), free_port())
    redis.start()
    yield pg, redis
    redis.stop()
    shutil.rmtree(redis.directory, ignore_errors=True)
    pg.stop()


@pytest.mark.chaos
@pytest.mark.parametrize("seed", CHAOS_SEEDS)
def test_online_migration_under_seeded_faults_and_load_ends_like_an_undisturbed_run(
    servers, seed, tmp_path
):
    pg, redis = servers
    flush_broker(redis.url)
    report = ChaosRun(pg, redis, tmp_path, seed, CHAOS_SIZE).run()
    print(report.summary())
    for fault in report.faults:
        print(f"  +{fault['at']:6.1f}s {fault['kind']:24} {'hit ' if fault['hit'] else 'miss'} "
              f"{fault['detail']}")
    for attempt in report.deploy_attempts:
        print(f"  deploy {attempt['stage']} #{attempt['attempt']}: exit {attempt['exit']} after "
              f"{attempt['seconds']}s: {attempt['last_line']}")

    assert report.harness_errors == []
    # Every kind of fault landed while the deploy was running, PostgreSQL restarted exactly once.
    assert set(report.fault_counts) == set(faults.ALL_KINDS), report.fault_counts
    assert report.fault_counts[faults.RESTART_POSTGRES] == 1
    # Counted by what they hit: a worker was killed after its batch wrote and before it
    # committed, and that batch was done again (once: the data checks below say so).
    assert report.hits[faults.KILL_WORKER_AFTER_WRITE] >= 1, report.faults
    assert report.batches_redone >= 1
    # The application only ever saw the errors of its own connection going down with the server.
    assert report.load_errors_by_migration == []
    assert report.load_statements > 200
    assert report.load_slowest_outside_faults < MAX_LOAD_LATENCY_S
    # Invariants, the oracle and the comparison with the undisturbed run ran on every table.
    assert sum(report.rows_checked.values()) > 10_000
    assert report.rows_checked[ORACLE_CHECK] > 10_000
    assert report.results_compared["alerts"] > 0 and report.results_compared["merge archive"] > 0


# -- single faults, each a hole the chaos run found, pinned down ------------------------------


@pytest.fixture
def engine_db(servers, request):
    """A database of the private server with the engine and 3,000 widgets of the test job."""
    pg, redis = servers
    name = "chaos_engine_" + "".join(c for c in request.node.name if c.isalnum())[-30:].lower()
    db = engine_database(pg.create_database(name), redis.url, widgets=3_000)
    flush_broker(redis.url)
    yield db
    pg.drop_database(name)


@pytest.fixture
def celery(engine_db, tmp_path, request):
    # A worker process: it serves a private server's database (by env), and whether it survived
    # the outage is its exit status.
    procs = Processes(engine_db.env, tmp_path)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


def run_row(db, column: str):
    return db.scalar(sql.SQL("SELECT {} FROM migrations_worker_jobrun WHERE job_name = %s "
                             "ORDER BY id DESC LIMIT 1").format(sql.Identifier(column)), [JOB])


def test_a_postgresql_outage_mid_run_stops_no_worker_and_the_run_finishes_every_row_once(
    servers, engine_db, celery
):
    pg, _ = servers
    engine_db.execute("INSERT INTO engine_app_knob (name, value) VALUES ('sleep', 0.1)")
    celery.worker("w1")
    engine_db.manage("backfill", "start", JOB, "--batch-size", "100",
                     "--option", "max_batch_size=100")
    wait_until(lambda: run_row(engine_db, "batches_done") >= 3, 60, message="3 batches")

    pg.restart(down_for=3.0)  # long enough that the slice in flight cannot record anything

    wait_until(lambda: run_row(engine_db, "status") == "finished", 120, message="run finished")
    # Before the fix the slice raised, Celery could not store that failure either (same
    # database), and the solo worker stopped with "Unrecoverable error".
    assert celery.procs["w1"].poll() is None, "the worker process died with the database"
    assert engine_db.rows("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1") == [(1, 3_000)]


def test_a_batch_held_up_by_an_application_row_lock_waits_for_it_instead_of_failing_the_run(
    transactional_db, test_database_url
):
    import threading

    import psycopg
    from django.core.management import call_command

    from migrations_worker.models import JobRun
    from migrations_worker.runs import control
    from tests.engine_app.support import make_widgets, touches_histogram

    make_widgets(1_000)
    # Each attempt gives up on the lock after 0.2s; three attempts are over in about a second.
    run = control.create_run(JOB, batch_size=100, options={
        "max_batch_size": 100, "lock_timeout_ms": 200, "max_attempts": 3,
        "retry_backoff_seconds": 0.1})
    holder = psycopg.connect(test_database_url)  # the application, in a long transaction
    holder.execute("SELECT id FROM engine_app_widget WHERE id = 550 FOR UPDATE")
    release = threading.Timer(4.0, holder.rollback)
    release.start()
    try:
        call_command("backfill", "run", JOB)  # before the fix: "ended failed" after ~1s
    finally:
        release.join()
        holder.close()
    run = JobRun.objects.get(pk=run.pk)
    assert run.status == "finished"
    assert touches_histogram() == {1: 1_000}
    held_up = run.batches.get(start_key__lt=550, end_key__gte=550)
    assert held_up.attempts == 1  # waiting for a lock is not a failed attempt
    assert "lock timeout" in held_up.error  # the last wait is there for the operator


def test_a_job_that_finishes_while_the_deploy_reads_its_gate_is_not_started_a_second_time(
    transactional_db,
):
    """The medium chaos run caught it: the gate was read while ticker_dedup had a batch to go,
    the run finished, and the deploy, finding no active run, started a new one that walked all
    571 groups again (harmless only because the job is idempotent)."""
    from django.core.management import call_command

    from migrations_worker.deploy.events import Pass
    from migrations_worker.deploy.executor import OnlineExecutor
    from migrations_worker.exceptions import JobNotFinished
    from migrations_worker.models import JobRun
    from tests.engine_app.support import make_widgets

    JobRun.objects.all().delete()  # the runs the test database's own migrate made
    make_widgets(100)
    call_command("backfill", "run", JOB)  # the workers finish it...
    # ...just after this pass found its gate closed.
    read_too_early = Pass(closed={JOB: JobNotFinished(JOB, "1 row to go")},
                          gated={"engine_app.0003_require_touch_widgets": JOB})
    OnlineExecutor(report=[].append).enqueue_gated(read_too_early)
    assert list(JobRun.objects.filter(job_name=JOB).values_list("status", flat=True)) == ["finished"]


def test_a_session_that_dies_without_a_word_inside_a_transaction_counts_as_a_lost_connection(
    servers,
):
    """A chaos run caught it: the deploy's backend died while the deploy was in a transaction
    (dispatching a run); psycopg reported "server closed the connection unexpectedly", with no
    SQLSTATE, Django had already replaced the connection when the error reached migrate_online,
    and the deploy exited instead of reconnecting. Here the backend is SIGKILLed, as the OOM
    killer would (the private server then recovers from the crash)."""
    pg, _ = servers
    url = pg.create_database("chaos_dies_silently")
    code = (
        "import os, signal, time\n"
        "from django.db import DatabaseError, connection, transaction\n"
        "from migrations_worker import pg\n"
        "try:\n"
        "    with transaction.atomic(), connection.cursor() as cursor:\n"
        "        cursor.execute('SELECT 1')\n"
        "        os.kill(connection.connection.info.backend_pid, signal.SIGKILL)\n"
        "        time.sleep(0.5)\n"
        "        cursor.execute('SELECT 1')\n"
        "except DatabaseError as exc:\n"
        "    print('lost' if pg.connection_lost(exc) else 'not lost', repr(exc))\n"
    )
    db = Database(url, "redis://127.0.0.1:1/0")
    try:
        result = db.manage("shell", "-v", "0", "-c", code)
        assert result.stdout.startswith("lost "), result.stdout + result.stderr
    finally:
        wait_until(lambda: _accepts(pg), 60, 0.5, "the server to recover from the crash")
        pg.drop_database("chaos_dies_silently")


def _accepts(pg: PrivatePostgres) -> bool:
    import psycopg

    try:
        with psycopg.connect(pg.url(), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
