"""Replica lag read from a real streaming standby (`tests/engine/standby.py`): a primary and a
standby of this module's own, made with `pg_basebackup -R`, replay paused on the standby with
`pg_wal_replay_pause()` and the standby stopped with pg_ctl, while a run works the primary.

The check (`throttle.replica_lag`) is read directly first, against the real pg_stat_replication:
behind in bytes, behind in seconds, an expected standby not connected, a count of standbys, a
role that cannot read the lag. Then whole runs (`backfill run` in a subprocess, as an operator
would) are held by a paused replay and by a stopped standby, go on once the standby is back, and
touch every row exactly once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from migrations_worker.models import HoldKind, JobRun
from migrations_worker.runs import control, runner, throttle
from tests.engine.standby import primary_with_standby
from tests.engine_app.support import JOB, make_widgets, scratch_broker_url
from tests.scratch import Database
from tests.workers import wait_until

NAME = "mw_test_standby"
TEMPLATE = "standby_engine_template"
DAY = 86_400.0
HUGE = 2**62
# Batches of a fixed 1,000 widgets (each about 100 kB of WAL), 2 s apart: the standby reports
# its replay position every second, so the check before each batch sees the last one's WAL.
RUN_OPTIONS = {"batch_size": 1_000, "min_batch_size": 1_000, "max_batch_size": 1_000,
               "pause_seconds": 2.0, "hold_seconds": 1.0,
               "max_replica_lag_seconds": 1.0, "max_replica_lag_bytes": 16_384}
WIDGETS = 6_000


@pytest.fixture(scope="module")
def cluster():
    primary, standby = primary_with_standby(NAME)
    try:
        template = Database(primary.create_database(TEMPLATE), scratch_broker_url())
        for app in ("migrations_worker", "engine_app"):
            template.manage("migrate", app, "-v", "0")
        # Migrating enqueued (and, with no widgets, finished) a run: each test starts with none.
        for table in ("jobruncheckpoint", "jobrunevent", "jobbatch", "jobrun"):
            template.execute(f"DELETE FROM migrations_worker_{table}")
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


@pytest.fixture
def healthy(cluster):
    primary, standby = cluster
    standby.ensure_healthy()
    return primary, standby


@contextmanager
def primary_cursor(primary, user: str = "postgres"):
    with psycopg.connect(f"postgres://{user}@127.0.0.1:{primary.port}/postgres",
                         autocommit=True) as conn, conn.cursor() as cursor:
        yield cursor


def check(primary, *, seconds: float = DAY, behind: int = HUGE, user: str = "postgres") -> str:
    """The replica check as a run would read it, with these limits and this site setting: the
    hold as "kind: text", or "" for none."""
    tuning = throttle.Tuning.resolve({"max_replica_lag_seconds": seconds,
                                      "max_replica_lag_bytes": behind})
    with primary_cursor(primary, user) as cursor:
        hold = throttle.replica_lag(cursor, (), tuning)
    return f"{hold.kind}: {hold.text}" if hold else ""


@pytest.fixture
def expect(settings):
    """Set the site's expected standbys (MIGRATIONS_WORKER["STANDBYS"]) for this test."""

    def set_to(value) -> None:
        settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "STANDBYS": value}

    return set_to


def write_wal(primary, rows: int = 3_000) -> None:
    with primary_cursor(primary) as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS wal_filler (id int, pad text)")
        cursor.execute("INSERT INTO wal_filler SELECT g, repeat('x', 100) FROM generate_series(1, %s) g",
                       [rows])


def eventually(probe, timeout: float, message: str):
    """Poll `probe` until it returns something truthy; return that."""
    found = []
    wait_until(lambda: found.append(probe()) or found[-1], timeout, interval=0.1, message=message)
    return found[-1]


# -- the check, read directly ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_paused_standby_reads_as_behind_in_bytes_then_in_seconds_and_as_fine_once_it_replays(
    healthy, expect
):
    primary, standby = healthy
    expect(NAME)
    assert check(primary, seconds=1.0, behind=65_536) == ""
    standby.pause_replay()
    try:
        write_wal(primary)  # about 400 kB the standby receives but does not replay
        by_bytes = eventually(lambda: check(primary, behind=65_536), 10,
                              "the bytes behind to pass 64 kB")
        assert by_bytes.startswith(f"replica_lag: standby '{NAME}' is ") and " kB behind (limits" in by_bytes
        # Seconds alone (no byte limit to speak of): replay_lag grows while replay waits.
        by_seconds = eventually(lambda: check(primary, seconds=1.0), 10,
                                "replay_lag to pass 1 s")
        lag = float(by_seconds.split(" is ", 1)[1].split("s and", 1)[0])
        assert lag > 1.0, by_seconds
    finally:
        standby.resume_replay()
    eventually(lambda: check(primary, seconds=1.0, behind=65_536) == "", 15,
               "the standby to replay and report it")


def test_an_expected_standby_missing_or_too_few_standbys_hold_and_unexpected_absence_does_not(
    healthy, expect
):
    primary, _ = healthy
    expect(f"{NAME},mw_other_standby")
    assert check(primary) == ("missing_standby: expected standby 'mw_other_standby' is not "
                              "connected (no row in pg_stat_replication): bring it back, or take it out of "
                              "MW_EXPECTED_STANDBYS")
    expect("2")
    assert check(primary) == (f"missing_standby: 2 standby(s) expected, 1 connected with a readable lag "
                              f"(connected: '{NAME}')")
    expect("1")
    assert check(primary) == ""
    expect("")
    assert check(primary) == ""


def test_a_role_that_cannot_read_the_standbys_lag_is_held_not_waved_through(healthy, expect):
    primary, _ = healthy
    with primary_cursor(primary) as cursor:
        cursor.execute("DROP ROLE IF EXISTS mw_plain")
        cursor.execute(sql.SQL("CREATE ROLE mw_plain LOGIN"))  # no pg_read_all_stats
    expect(NAME)
    assert check(primary, user="mw_plain") == (
        f"missing_standby: lag of standby '{NAME}' cannot be read (replay_lsn is NULL: no "
        "report yet, or this role lacks pg_read_all_stats: GRANT pg_read_all_stats TO it)")
    expect("1")
    assert check(primary, user="mw_plain").startswith(
        "missing_standby: 1 standby(s) expected, 0 connected with a readable lag")
    with primary_cursor(primary) as cursor:
        cursor.execute("GRANT pg_read_all_stats TO mw_plain")
    expect(NAME)
    assert check(primary, user="mw_plain") == ""


# -- whole runs -----------------------------------------------------------------------------------


@pytest.fixture
def run_database(healthy, request):
    """A database of this test's own on the primary (from the migrated template), with widgets,
    whose commands expect the standby."""
    primary, standby = healthy
    name = "standby_" + request.node.name[5:40]
    url = primary.create_database(name, template=TEMPLATE)
    db = Database(url, scratch_broker_url(), MW_EXPECTED_STANDBYS=NAME)
    db.execute("INSERT INTO engine_app_widget (id, touches, value) "
               "SELECT g, 0, g FROM generate_series(1, %s) g", [WIDGETS])
    standby.wait_streaming(caught_up=True)  # the run starts from a standby that has replayed all
    yield db, primary, standby
    primary.drop_database(name)


def start_run(db: Database, tmp_path):
    args = ["backfill", "run", JOB]
    for key, value in RUN_OPTIONS.items():
        args += ["--option", f"{key}={value}"]
    return db.popen(*args, log=tmp_path / "backfill-run.log")


def now(db: Database):
    return db.scalar("SELECT clock_timestamp()")


def batches_started(db: Database, after, before=None) -> int:
    return db.scalar("SELECT count(*) FROM migrations_worker_jobbatch WHERE started_at > %s "
                     "AND started_at < coalesce(%s, clock_timestamp())", [after, before])


def first_hold_after(db: Database, moment):
    return db.rows("SELECT at, message, hold_kind FROM migrations_worker_jobrunevent "
                   "WHERE message LIKE 'on hold:%%' AND at > %s ORDER BY id LIMIT 1", [moment])


def finish(db: Database, proc, tmp_path) -> None:
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "backfill-run.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]


def assert_every_row_once(db: Database) -> None:
    assert db.rows("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1") == [(1, WIDGETS)]
    assert db.scalar("SELECT status FROM migrations_worker_jobrun") == "finished"


@pytest.mark.slow
def test_replay_paused_mid_run_holds_it_within_one_batch_and_it_goes_on_when_replay_resumes(
    run_database, tmp_path
):
    db, _, standby = run_database
    proc = start_run(db, tmp_path)
    try:
        wait_until(lambda: (db.scalar("SELECT max(batches_done) FROM migrations_worker_jobrun")
                            or 0) >= 2, 60, message="two batches")
        standby.pause_replay()
        paused_at = now(db)
        # A standby that replays as it should never held the run.
        assert db.scalar("SELECT count(*) FROM migrations_worker_jobrunevent WHERE message LIKE "
                         "'on hold:%%' AND at < %s", [paused_at]) == 0
        [(held_at, message, kind)] = eventually(lambda: first_hold_after(db, paused_at), 30,
                                                "the run to go on hold")
        assert message.startswith(f"on hold: standby '{NAME}' is ") and "behind" in message
        assert kind == HoldKind.REPLICA_LAG
        # Within one batch: the one that wrote the WAL the standby did not replay.
        assert batches_started(db, paused_at, held_at) <= 1
        time.sleep(4)  # held for as long as replay is paused: no batch
        assert batches_started(db, held_at) == 0
        assert db.rows("SELECT hold_kind, hold_reason LIKE '%%behind%%' FROM "
                       "migrations_worker_jobrun") == [(HoldKind.REPLICA_LAG, True)]
        standby.resume_replay()
        resumed_at = now(db)
        finish(db, proc, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        if standby.replay_paused():
            standby.resume_replay()
    assert db.scalar("SELECT count(*) FROM migrations_worker_jobrunevent WHERE message = "
                     "'hold cleared' AND at > %s", [resumed_at]) >= 1
    assert batches_started(db, resumed_at) >= 1
    assert_every_row_once(db)


@pytest.mark.slow
def test_the_standby_stopped_mid_run_holds_it_until_the_standby_is_back(run_database, tmp_path):
    db, _, standby = run_database
    proc = start_run(db, tmp_path)
    try:
        wait_until(lambda: (db.scalar("SELECT max(batches_done) FROM migrations_worker_jobrun")
                            or 0) >= 2, 60, message="two batches")
        standby.halt()
        halted_at = now(db)
        [(held_at, message, kind)] = eventually(lambda: first_hold_after(db, halted_at), 30,
                                                "the run to go on hold")
        assert kind == HoldKind.MISSING_STANDBY
        assert message == (f"on hold: expected standby '{NAME}' is not connected (no row in "
                           "pg_stat_replication): bring it back, or take it out of "
                           "MW_EXPECTED_STANDBYS")
        assert batches_started(db, halted_at, held_at) <= 1
        time.sleep(4)  # no standby, no batch: it may be falling hours behind
        assert batches_started(db, held_at) == 0
        standby.start()
        back_at = now(db)
        finish(db, proc, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert batches_started(db, back_at) >= 1
    assert_every_row_once(db)


def test_the_standby_helper_is_a_real_streaming_replica(healthy):
    """What the tests above rely on: the primary lists it by name, and it replays what the
    primary writes (and stops replaying when paused)."""
    primary, standby = healthy
    assert standby.replication_row()[0] == "streaming"
    with primary_cursor(primary) as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS replicated (id int)")
        cursor.execute("INSERT INTO replicated VALUES (1)")
    standby.wait_streaming(caught_up=True)
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM replicated").fetchone()[0] >= 1
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True


@pytest.mark.django_db(transaction=True)
def test_a_reason_longer_than_the_hold_column_is_cut_and_the_run_held_not_crashed(expect):
    """Twelve expected standbys, none connected (the test server has none): the reason names
    them all, more than a run's hold_reason holds; the run is held with it cut short."""
    expect(",".join(f"replica_{i:02d}" for i in range(12)))
    make_widgets(10)
    run = control.create_run(JOB)
    JobRun.objects.filter(pk=run.pk).update(status="running")
    outcome = runner.RunWorker(run.pk, name="test").work()
    assert outcome.kind == runner.Kind.HOLD
    held = JobRun.objects.get(pk=run.pk)
    assert held.hold_kind == HoldKind.MISSING_STANDBY
    reason = held.hold_reason
    assert len(reason) == throttle.MAX_REASON_CHARS and reason.endswith("...")
    assert reason.startswith("expected standby 'replica_00' is not connected")
