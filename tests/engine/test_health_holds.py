"""A run holds while its database is busy and goes on by itself once it is not, each hold made
by the condition itself, never written into the run: sessions of the application queued behind
another's lock on the job's table (a row lock or the table's), and a transaction left open
longer than the run allows. While held no batch runs; the run stores the hold's kind and reason
and records it, then records it cleared and finishes every row once."""

from __future__ import annotations

import re
import threading

import psycopg
import pytest
from django.db import connections
from psycopg import sql

from migrations_worker.models import HoldKind, JobRun, RunStatus
from migrations_worker.runs import control, drive
from tests.conftest import database_url
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Batches of 100, and a hold looked at again every second instead of every 5 (a worker looks at
# its database's health at most once a second).
TUNING = {"batch_size": 100, "min_batch_size": 100, "max_batch_size": 100, "hold_seconds": 1}

# What the application holds, and what another of its sessions then queues for.
QUEUES = {
    "a row": ("SELECT id FROM engine_app_widget WHERE id = 150 FOR UPDATE",
              "UPDATE engine_app_widget SET value = value + 1 WHERE id = 150"),
    "the table": ("SELECT count(*) FROM engine_app_widget",
                  "LOCK TABLE engine_app_widget IN ACCESS EXCLUSIVE MODE"),
}

WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'queued' AND wait_event_type = 'Lock'
"""

TRANSACTION_AGE = """
SELECT extract(epoch FROM now() - xact_start) FROM pg_stat_activity WHERE pid = %s
"""


class Worked(threading.Thread):
    """`backfill run` of the job in a thread of its own: it works the run, sleeping out each
    hold, until the run settles."""

    def __init__(self, using: str = "default"):
        super().__init__(daemon=True)
        self.using = using
        self.ended: JobRun | None = None

    def run(self) -> None:
        try:
            self.ended = drive.run_inline(JOB, actor="test", worker_name="test",
                                          message="run by the test", using=self.using)
        finally:
            connections[self.using].close()


def held(run: JobRun) -> tuple[str, str, int]:
    run.refresh_from_db()
    return run.hold_kind, run.hold_reason, run.batches_done


def hold_events(run: JobRun) -> list[tuple[str, str]]:
    return [(e.message, e.hold_kind) for e in run.events.order_by("id")
            if e.message.startswith("on hold") or e.message == "hold cleared"]


@pytest.mark.parametrize("what", QUEUES)
def test_a_session_queued_behind_another_sessions_lock_on_the_jobs_table_holds_the_run_until_served(
    test_database_url, what
):
    make_widgets(300)
    run = control.create_run(JOB, options=TUNING)
    holding, queueing = QUEUES[what]
    holder = psycopg.connect(test_database_url, application_name="holder")
    holder.execute(holding)  # a transaction of the application, left open
    queued = psycopg.connect(test_database_url, application_name="queued")

    def queue() -> None:  # once served, its transaction is over at once
        with queued.transaction():
            queued.execute(queueing)

    waiter = threading.Thread(target=queue, daemon=True)
    waiter.start()
    worker = Worked()
    try:
        wait_until(lambda: queued_count(test_database_url) == 1, 30, 0.05, "the session to queue")
        worker.start()
        reason = "1 session(s) waiting for a lock on engine_app_widget"
        wait_until(lambda: held(run)[:2] == (HoldKind.LOCK_WAITERS, reason), 30, 0.05,
                   "the run to hold")
        assert held(run)[2] == 0  # no batch while the application queues
    finally:
        holder.rollback()  # the application's transaction ends; the queued session is served
        waiter.join(30)
        holder.close()
    worker.join(60)
    queued.close()
    assert worker.ended is not None and worker.ended.status == RunStatus.FINISHED
    assert held(run)[:2] == ("", "")
    assert touches_histogram() == {1: 300}
    assert hold_events(run) == [(f"on hold: {reason}", HoldKind.LOCK_WAITERS), ("hold cleared", "")]


@pytest.mark.django_db(transaction=True, databases=["default", "near"])
def test_a_session_queued_in_another_database_made_from_the_same_template_holds_nothing():
    """Databases made from one template share their tables' oids: a session queued on a row of
    the twin's table is not queued on this database's, and the run goes on."""
    make_widgets(300, using="near")
    near = connections["near"].settings_dict["NAME"]
    twin = f"{near}_twin"
    connections["near"].close()  # a template must have no session
    server = database_url("near").rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(twin)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(twin),
                                                                      sql.Identifier(near)))
    holding, queueing = QUEUES["a row"]
    holder = psycopg.connect(f"{server}/{twin}", application_name="holder")
    queued = psycopg.connect(f"{server}/{twin}", application_name="queued")

    def queue() -> None:
        with queued.transaction():
            queued.execute(queueing)

    waiter = threading.Thread(target=queue, daemon=True)
    try:
        holder.execute(holding)
        waiter.start()
        wait_until(lambda: queued_count(f"{server}/{twin}") == 1, 30, 0.05, "the twin's session to queue")
        run = control.create_run(JOB, options=TUNING, using="near")
        worker = Worked(using="near")
        worker.start()
        worker.join(60)
        assert queued_count(f"{server}/{twin}") == 1  # still queued the whole time
        assert worker.ended is not None and worker.ended.status == RunStatus.FINISHED
        assert hold_events(JobRun.objects.using("near").get(pk=run.pk)) == []
        assert touches_histogram(using="near") == {1: 300}
    finally:
        holder.rollback()  # the twin's queued session is served
        if waiter.is_alive():
            waiter.join(30)
        holder.close()
        queued.close()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(twin)))


def queued_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(WAITING).fetchone()[0]


def test_a_transaction_open_longer_than_the_run_allows_holds_it_until_the_transaction_ends(
    test_database_url
):
    make_widgets(300)
    run = control.create_run(JOB, options={**TUNING, "max_transaction_seconds": 1})
    report = psycopg.connect(test_database_url, application_name="report")
    report.execute("SELECT count(*) FROM engine_app_widget")  # its transaction stays open
    pid = report.info.backend_pid
    worker = Worked()
    try:
        with psycopg.connect(test_database_url, autocommit=True) as watcher:
            wait_until(lambda: watcher.execute(TRANSACTION_AGE, [pid]).fetchone()[0] > 1.2, 30,
                       0.05, "the transaction to be older than the run allows")
        worker.start()
        wait_until(lambda: held(run)[0] == HoldKind.LONG_TRANSACTION, 30, 0.05,
                   "the run to hold")
        kind, reason, batches = held(run)
        assert re.fullmatch(rf"transaction open for \d+s \(pid {pid}\)", reason), reason
        assert batches == 0
        assert worker.is_alive()
    finally:
        report.rollback()  # the report ends; its session stays, idle outside a transaction
    worker.join(60)
    assert worker.ended is not None and worker.ended.status == RunStatus.FINISHED
    assert held(run)[:2] == ("", "")
    assert touches_histogram() == {1: 300}
    *holds, cleared = hold_events(run)  # a hold whose reason changes (its age) is recorded again
    assert holds and cleared == ("hold cleared", "")
    for message, kind in holds:
        assert kind == HoldKind.LONG_TRANSACTION
        assert re.fullmatch(rf"on hold: transaction open for \d+s \(pid {pid}\)", message), message
    report.close()
