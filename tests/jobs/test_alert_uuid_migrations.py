"""Defect 5 fixed online: Alert moves onto a UUID primary key, and AlertTrigger's reference
with it, while old and new application code keep reading and writing.

The migrations are 0005 (expand: columns, sync trigger, enqueue the `alerts_uuid` job),
0006 (gated on the job: NOT NULL), 0007-0009 (indexes, concurrently) and 0010 (the key swap and
the new model state). Scenarios that start from the legacy schema run in scratch databases of their
own, copied from a template at investments 0004 and migrated by `manage.py migrate` in a
subprocess, as a deploy does; the test database (migrated from zero by the test run) is where
the finished schema meets the ORM. Worker tests use real Celery workers in subprocesses and a
Redis server of this module's own.

"Old code" is the SQL the legacy ORM sent (it knows no `uuid` / `alert_uuid` column); "new
code" is the current models through the ORM.
"""

from __future__ import annotations

import importlib
import itertools
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.types.json import Jsonb

from investments.models import Alert, AlertTrigger
from migrations_worker.job import get_job
from tests.conftest import ROOT
from tests.scratch import ScratchDatabase
from tests.workers import PrivateRedis, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

APP = "investments"
LEGACY = "0004_watchlist_user_asset_index"
EXPAND = "0005_alert_uuid_expand"
CONTRACT = [
    "0006_alert_uuid_not_null",
    "0007_alert_uuid_unique_index",
    "0008_alert_legacy_id_unique_index",
    "0009_alerttrigger_alert_uuid_index",
    "0010_alert_uuid_primary_key",
]
JOB = "alerts_uuid"
LOCK_TIMEOUT_S = 2.0
# A write may queue behind a DDL statement for at most its lock_timeout; allow for scheduling.
MAX_WRITE_LATENCY_S = LOCK_TIMEOUT_S + 0.5

OLD_INSERT_ALERT = (
    "INSERT INTO investments_alert (user_id, asset_id, condition, threshold, is_active, "
    "created_at, is_deleted) VALUES (%s, %s, 'above', %s, true, now(), false) RETURNING id"
)
OLD_INSERT_TRIGGER = (
    "INSERT INTO investments_alerttrigger (alert_id, triggered_at, price, notified) "
    "VALUES (%s, now(), %s, false) RETURNING id"
)
OLD_READ_ALERT = (
    "SELECT id, condition, threshold FROM investments_alert WHERE id = %s AND NOT is_deleted"
)


# -- scratch databases ----------------------------------------------------------------------


class AlertsDatabase(ScratchDatabase):
    """A scratch database copied from the legacy template, with what these tests ask of it."""

    def __init__(self, name: str, broker_url: str):
        super().__init__(name)
        self.env["TEST_REDIS_URL"] = broker_url

    def create_from(self, template: str) -> AlertsDatabase:
        self.drop()
        self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(self.name), sql.Identifier(template)
        ))
        return self

    def execute(self, query: str, params=None) -> None:
        with self.connect() as conn:
            conn.execute(query, params)

    def script(self, code: str, *args: str) -> None:
        """Python with Django set up against this database, in a subprocess."""
        result = subprocess.run(
            [sys.executable, "-c", "import django\ndjango.setup()\n" + code, *args], cwd=ROOT,
            env=self.env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr

    def migrate(self, *args: str) -> subprocess.CompletedProcess:
        return self.manage("migrate", *args)

    # -- the data ---------------------------------------------------------------------------

    def seed(self, alerts: int, triggers: int) -> None:
        """`alerts` alerts (ids 1..alerts) and `triggers` trigger rows spread over them."""
        self.execute(
            "INSERT INTO investments_alert (user_id, asset_id, condition, threshold, is_active, "
            "created_at, is_deleted) "
            "SELECT u.id, s.id, CASE WHEN g %% 2 = 0 THEN 'above' ELSE 'below' END, g, "
            "g %% 5 <> 0, now() - make_interval(secs => g), g %% 11 = 0 "
            "FROM generate_series(1, %s) g, (SELECT min(id) AS id FROM auth_user) u, "
            "(SELECT min(id) AS id FROM assets_asset) s",
            [alerts],
        )
        self.execute(
            "INSERT INTO investments_alerttrigger (alert_id, triggered_at, price, notified) "
            "SELECT 1 + (g * 7919) %% %s, now(), g, g %% 2 = 0 "
            "FROM generate_series(1, %s) g",
            [alerts, triggers],
        )

    def alerts_fingerprint(self, upto: int) -> str:
        """Everything the legacy schema knew about alerts 1..upto."""
        return self.scalar(
            "SELECT md5(string_agg(concat_ws('|', id, user_id, asset_id, condition, threshold, "
            "is_active, created_at, is_deleted, deleted_at), ',' ORDER BY id)) "
            "FROM investments_alert WHERE id <= %s",
            [upto],
        )

    def uuids(self) -> dict[int, str]:
        return dict(self.rows("SELECT id, uuid FROM investments_alert WHERE uuid IS NOT NULL"))

    def run(self) -> dict:
        rows = self.rows(
            "SELECT id, status, report, error FROM migrations_worker_jobrun "
            "WHERE job_name = %s ORDER BY id DESC LIMIT 1",
            [JOB],
        )
        return dict(zip(("id", "status", "report", "error"), rows[0], strict=True)) if rows else {}

    def applied(self) -> list[str]:
        return [r[0] for r in self.rows(
            "SELECT name FROM django_migrations WHERE app = %s ORDER BY id", [APP]
        )]

    def second_pass(self) -> dict[str, int]:
        """The job's batch over every key once more, as a redelivery would do it."""
        job = get_job(JOB)
        with self.connect() as conn, conn.transaction(), conn.cursor() as cursor:
            high = cursor.execute("SELECT max(id) FROM investments_alert").fetchone()[0]
            return job.process_batch(cursor, 0, high).counts

    def remaining(self) -> int:
        with self.connect() as conn, conn.cursor() as cursor:
            return get_job(JOB).count_remaining(cursor)


BUILD_TEMPLATE = f"""
from django.core.management import call_command
from seed.legacy import migrate_to_legacy
migrate_to_legacy()
call_command("migrate", {APP!r}, {LEGACY!r}, verbosity=0)
"""

REFERENCE_ROWS = [
    "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, "
    "is_staff, is_active, date_joined) VALUES ('!', false, 'alerts', '', '', '', false, true, now())",
    "INSERT INTO assets_country (iso_code, name, created_at, updated_at) "
    "VALUES ('US', 'United States', now(), now())",
    "INSERT INTO assets_currency (code, name, created_at, updated_at) "
    "VALUES ('USD', 'US dollar', now(), now())",
    "INSERT INTO assets_exchange (mic, name, country_id, currency_id, created_at, updated_at) "
    "SELECT 'XNYS', 'New York Stock Exchange', c.id, m.id, now(), now() "
    "FROM assets_country c, assets_currency m",
    "INSERT INTO assets_asset (ticker, name, exchange_id, currency_id, created_at, updated_at) "
    "SELECT 'ACME', 'Acme', e.id, e.currency_id, now(), now() FROM assets_exchange e",
]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Redis of this module's own: parallel test runs share the default test broker."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def legacy_template(django_db_setup, broker):
    """The legacy schema with investments up to 0004 (the fixes before this one), and one user,
    country, currency, exchange and asset for alerts to belong to. Copied for each test."""
    db = AlertsDatabase(f"{connection.settings_dict['NAME']}_alerts_tpl"[-63:], broker).create()
    try:
        db.script(BUILD_TEMPLATE)
        for statement in REFERENCE_ROWS:
            db.execute(statement)
        yield db.name
    finally:
        db.drop()


SCRATCH_NUMBERS = itertools.count(1)


@pytest.fixture
def scratch(legacy_template, broker):
    name = f"{connection.settings_dict['NAME']}_alerts_{next(SCRATCH_NUMBERS)}"[-63:]
    db = AlertsDatabase(name, broker).create_from(legacy_template)
    yield db
    db.drop()


@pytest.fixture
def scratch_settings(scratch) -> dict:
    """Django connection settings for the scratch database (for the ORM in a thread)."""
    return {**connection.settings_dict, "NAME": scratch.name}


@pytest.fixture
def workers(processes, scratch):
    processes.env["DATABASE_URL"] = scratch.url
    processes.env["TEST_REDIS_URL"] = scratch.env["TEST_REDIS_URL"]
    return processes


# -- what "done" means ----------------------------------------------------------------------


def assert_contracted(db: AlertsDatabase, alerts: int, triggers: int) -> None:
    """The finished state: every alert a distinct UUID, every reference in step, the primary key
    on uuid, both foreign keys validated, nothing half-built left behind."""
    assert db.applied()[-1] == CONTRACT[-1]
    total, with_uuid, distinct = db.rows(
        "SELECT count(*), count(uuid), count(DISTINCT uuid) FROM investments_alert"
    )[0]
    assert total == alerts and with_uuid == alerts and distinct == alerts
    assert db.scalar("SELECT count(*) FROM investments_alerttrigger") == triggers
    assert db.scalar(
        "SELECT count(*) FROM investments_alerttrigger t "
        "LEFT JOIN investments_alert a ON a.uuid = t.alert_uuid "
        "WHERE a.uuid IS NULL OR a.id IS DISTINCT FROM t.alert_id"
    ) == 0
    primary = db.rows(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary"
    )
    assert primary == [("uuid",)]
    assert db.rows(
        "SELECT conname, contype FROM pg_constraint WHERE conrelid = 'investments_alert'::regclass "
        "AND contype IN ('p', 'u', 'c') ORDER BY conname"
    ) == [("investments_alert_legacy_id_key", "u"), ("investments_alert_pkey", "p")]
    foreign_keys = db.rows(
        "SELECT a.attname, c.confrelid::regclass::text, f.attname, c.convalidated, "
        "c.condeferrable, c.condeferred FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = c.confkey[1] "
        "WHERE c.conrelid = 'investments_alerttrigger'::regclass AND c.contype = 'f' "
        "ORDER BY 1"
    )
    assert foreign_keys == [
        ("alert_id", "investments_alert", "id", True, True, True),
        ("alert_uuid", "investments_alert", "uuid", True, True, True),
    ]
    assert db.rows(
        "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
        "WHERE (table_name, column_name) IN (('investments_alert', 'uuid'), "
        "('investments_alert', 'id'), ('investments_alerttrigger', 'alert_uuid'), "
        "('investments_alerttrigger', 'alert_id')) ORDER BY 1, 2"
    ) == [
        ("investments_alert", "id", "NO"),
        ("investments_alert", "uuid", "NO"),
        ("investments_alerttrigger", "alert_id", "NO"),
        ("investments_alerttrigger", "alert_uuid", "NO"),
    ]
    assert db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert db.remaining() == 0


# -- the application, writing while the migration runs ---------------------------------------


class Traffic(threading.Thread):
    """Old code's SQL all along and, once `new_code` is set, new code's ORM too, on a connection
    of its own. Every statement's latency is recorded; any error fails the migration."""

    alias = "alerts_traffic"

    def __init__(self, settings_dict: dict, seeded_alerts: int):
        super().__init__(daemon=True)
        self.settings_dict = settings_dict
        self.seeded_alerts = seeded_alerts
        self.new_code = threading.Event()
        self.done = threading.Event()
        self.statements: list[tuple[float, str, float]] = []  # (ended at, kind, seconds)
        self.errors: list[str] = []
        self.created: Counter[str] = Counter()
        self.rng = random.Random(5)

    def timed(self, kind: str, action):
        started = time.monotonic()
        try:
            return action()
        except Exception as exc:
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        finally:
            ended = time.monotonic()
            self.statements.append((ended, kind, ended - started))

    def old_code(self) -> None:
        db = connections[self.alias]

        def execute(query, params):
            with db.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchone()

        user_id, asset_id = self.user_and_asset
        alert = self.timed("old: insert alert", lambda: execute(
            OLD_INSERT_ALERT, [user_id, asset_id, self.rng.randint(1, 1000)]
        ))
        if alert is not None:
            self.created["alerts"] += 1
            if self.timed("old: insert trigger", lambda: execute(OLD_INSERT_TRIGGER, [alert[0], 1])):
                self.created["triggers"] += 1
        # A trigger on an alert from before the migration: the ones the job is backfilling.
        legacy_alert = self.rng.randint(1, self.seeded_alerts)
        if self.timed("old: insert trigger", lambda: execute(OLD_INSERT_TRIGGER, [legacy_alert, 2])):
            self.created["triggers"] += 1
        self.timed("old: read alert", lambda: execute(OLD_READ_ALERT, [legacy_alert]))

    def new_code_writes(self) -> None:
        user_id, asset_id = self.user_and_asset
        alerts = Alert.all_objects.using(self.alias)
        triggers = AlertTrigger.objects.using(self.alias)

        def create_alert():
            alert = alerts.create(user_id=user_id, asset_id=asset_id, condition="below",
                                  threshold=Decimal("1.5"))
            assert alert.legacy_id is not None, "the database did not number the new alert"
            return alert

        alert = self.timed("new: create alert", create_alert)
        if alert is not None:
            self.created["alerts"] += 1
            if self.timed("new: create trigger", lambda: triggers.create(
                alert=alert, triggered_at=timezone.now(), price=Decimal("3")
            )):
                self.created["triggers"] += 1
        legacy = self.timed("new: read legacy alert", lambda: alerts.get(
            legacy_id=self.rng.randint(1, self.seeded_alerts)
        ))
        if legacy is not None and self.timed("new: create trigger", lambda: triggers.create(
            alert=legacy, triggered_at=timezone.now(), price=Decimal("4")
        )):
            self.created["triggers"] += 1

    def run(self) -> None:
        # A connection of this thread's own, known to the ORM by alias in this thread only.
        wrapper = connections[DEFAULT_DB_ALIAS].__class__
        connections[self.alias] = wrapper(self.settings_dict, alias=self.alias)
        try:
            with connections[self.alias].cursor() as cursor:
                cursor.execute("SELECT min(id) FROM auth_user")
                user_id = cursor.fetchone()[0]
                cursor.execute("SELECT min(id) FROM assets_asset")
                self.user_and_asset = (user_id, cursor.fetchone()[0])
            while not self.done.is_set():
                self.old_code()
                if self.new_code.is_set():
                    self.new_code_writes()
                time.sleep(0.002)
        except Exception as exc:  # the loop itself must not die silently
            self.errors.append(f"traffic: {type(exc).__name__}: {exc}")
        finally:
            connections[self.alias].close()
            del connections[self.alias]

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)

    def slowest(self) -> tuple[float, str]:
        return max((seconds, kind) for _, kind, seconds in self.statements)

    def count(self, kind: str = "", between: tuple[float, float] = (0, float("inf"))) -> int:
        return sum(1 for at, k, _ in self.statements if kind in k and between[0] <= at <= between[1])


def hold_alerts_for(db: AlertsDatabase, seconds: float) -> threading.Thread:
    """A long report query: ACCESS SHARE on investments_alert for `seconds`. A migration's DDL
    must wait for it without holding the writers up behind its own lock request."""

    def report() -> None:
        with db.connect() as conn, conn.transaction():
            conn.execute("SELECT count(*) FROM investments_alert")
            time.sleep(seconds)

    reader = threading.Thread(target=report, daemon=True)
    reader.start()
    wait_until(lambda: db.scalar(
        "SELECT count(*) FROM pg_locks WHERE relation = 'investments_alert'::regclass "
        "AND mode = 'AccessShareLock' AND granted AND pid <> pg_backend_pid()"
    ) > 0, 10, interval=0.02, message="the report to start")
    return reader


# -- the whole change, under live traffic ----------------------------------------------------


def test_expand_job_and_contract_under_live_traffic_keep_every_alert_and_reference(
    scratch, scratch_settings, workers
):
    alerts, triggers = 40_000, 10_000
    scratch.seed(alerts, triggers)
    before = scratch.alerts_fingerprint(alerts)
    traffic = Traffic(scratch_settings, alerts)
    traffic.start()
    try:
        time.sleep(0.5)  # the application is busy before the deploy starts
        started = time.monotonic()
        report = hold_alerts_for(scratch, 3.0)
        expand = scratch.migrate(APP, EXPAND)  # expand, and enqueue the job
        expanded = time.monotonic()
        # Small batches with a breather between them, as an operator runs it on a busy day: the
        # job then overlaps plenty of the traffic.
        scratch.execute(
            "UPDATE migrations_worker_jobrun SET options = %s WHERE job_name = %s",
            [Jsonb({"max_batch_size": 1000, "pause_seconds": 0.05}), JOB],
        )
        workers.worker("w1")
        wait_until(lambda: scratch.run().get("status") == "finished", 60, message="job finished")
        backfilled = time.monotonic()
        report.join()
        report = hold_alerts_for(scratch, 3.0)
        contract = scratch.migrate(APP)  # gate, NOT NULL, indexes, key swap
        contracted = time.monotonic()
        report.join()
        traffic.new_code.set()  # new code deployed; old code still running beside it
        time.sleep(1.5)
    finally:
        traffic.stop()

    assert traffic.errors == []
    latency, kind = traffic.slowest()
    print(
        f"\n{alerts:,} alerts, {triggers:,} triggers; expand {expanded - started:.1f}s, "
        f"job {backfilled - expanded:.1f}s, contract {contracted - backfilled:.1f}s; "
        f"traffic: {traffic.count():,} statements ({traffic.count('trigger', (expanded, backfilled))}"
        f" trigger inserts during the job), created {dict(traffic.created)}; "
        f"slowest {latency * 1000:.0f}ms ({kind})"
    )
    # The report made the DDL give up its lock request and retry, more than once...
    for result in (expand, contract):
        assert "lock not granted" in result.stdout + result.stderr
    # ...and nobody waited behind it longer than the lock_timeout.
    assert latency < MAX_WRITE_LATENCY_S, f"{kind} waited {latency:.2f}s"
    assert traffic.count("new: create trigger") > 0
    assert scratch.alerts_fingerprint(alerts) == before
    assert_contracted(
        scratch, alerts + traffic.created["alerts"], triggers + traffic.created["triggers"]
    )
    run = scratch.run()
    assert run["report"]["alerts_backfilled"] <= alerts + traffic.created["alerts"]
    uuids = scratch.uuids()
    assert scratch.second_pass() == {"alerts_backfilled": 0, "references_backfilled": 0}
    assert scratch.uuids() == uuids


# -- a worker killed mid-batch ---------------------------------------------------------------


def waiting_on_a_lock(db: AlertsDatabase, statement: str) -> bool:
    return db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE %s",
        [f"%{statement}%"],
    ) > 0


def test_a_worker_killed_mid_batch_leaves_every_alert_exactly_one_uuid(scratch, workers):
    alerts, triggers = 50_000, 10_000
    scratch.seed(alerts, triggers)
    scratch.migrate(APP, EXPAND)  # enqueued; no worker is listening yet
    # A row in the middle holds its batch up, so the kill lands inside that batch.
    holder = scratch.connect()
    holder.autocommit = False
    holder.execute("SELECT 1 FROM investments_alert WHERE id = 20000 FOR UPDATE")
    workers.worker("w1")
    workers.beat()
    wait_until(lambda: waiting_on_a_lock(scratch, "UPDATE investments_alert SET uuid"), 30,
               interval=0.02, message="a batch blocked mid-way")
    workers.kill("w1", signal.SIGKILL)
    killed = time.monotonic()
    assigned = scratch.uuids()  # what committed before the kill
    holder.rollback()
    holder.close()

    workers.worker("w2")  # nobody tells it about the run: beat re-sends it
    wait_until(lambda: scratch.run().get("status") == "finished", 60, message="job finished")
    recovered = time.monotonic() - killed

    in_flight = scratch.rows(
        "SELECT start_key, end_key FROM migrations_worker_jobbatch WHERE attempts = 2"
    )
    print(f"\n{alerts:,} alerts: killed with {len(assigned):,} backfilled, batch {in_flight} "
          f"in flight; finished {recovered:.1f}s after the kill")
    assert 0 < len(assigned) < alerts
    final = scratch.uuids()
    assert len(final) == alerts and len(set(final.values())) == alerts
    assert {key: final[key] for key in assigned} == assigned
    run = scratch.run()
    # Exactly once: the killed batch's work and its counts were rolled back together.
    assert run["report"] == {"alerts_backfilled": alerts, "references_backfilled": triggers}
    assert scratch.scalar(
        "SELECT count(*) FROM migrations_worker_jobbatch "
        "WHERE run_id = %s AND attempts = 2 AND status = 'succeeded'", [run["id"]]
    ) == 1
    assert scratch.second_pass() == {"alerts_backfilled": 0, "references_backfilled": 0}
    assert scratch.uuids() == final

    scratch.migrate(APP)
    assert_contracted(scratch, alerts, triggers)
    assert scratch.uuids() == final


# -- the race between a batch and the application ----------------------------------------


def test_a_reference_written_while_its_alert_is_backfilled_always_gets_the_uuid(scratch):
    scratch.seed(alerts=100, triggers=0)
    scratch.migrate(APP, EXPAND)  # no worker: the batches below are run by hand
    job = get_job(JOB)

    def batch(conn: psycopg.Connection, start: int, end: int) -> None:
        with conn.cursor() as cursor:
            job.process_batch(cursor, start, end)

    def batch_in_its_own_transaction(start: int, end: int) -> None:
        with scratch.connect() as conn, conn.transaction():
            batch(conn, start, end)

    # The application writes first and commits late: the batch waits for it (FOR SHARE), then
    # sees its row. Without that lock the batch would miss the row and it would stay NULL.
    app = scratch.connect()
    app.autocommit = False
    app.execute(OLD_INSERT_TRIGGER, [10, 1])  # alert 10 has no UUID yet, nor does the row
    batch_thread = threading.Thread(target=batch_in_its_own_transaction, args=(0, 50))
    batch_thread.start()
    wait_until(lambda: waiting_on_a_lock(scratch, "UPDATE investments_alert SET uuid"), 10,
               interval=0.02, message="the batch to wait for the application")
    app.commit()
    batch_thread.join(10)

    # The batch writes first and commits late: the application waits for it and reads the UUID.
    batch_conn = scratch.connect()
    batch_conn.autocommit = False
    batch(batch_conn, 50, 100)
    app_thread = threading.Thread(
        target=lambda: (app.execute(OLD_INSERT_TRIGGER, [60, 2]), app.commit())
    )
    app_thread.start()
    wait_until(lambda: waiting_on_a_lock(scratch, "INSERT INTO investments_alerttrigger"), 10,
               interval=0.02, message="the application to wait for the batch")
    batch_conn.commit()
    app_thread.join(10)
    app.close()
    batch_conn.close()

    assert scratch.rows(
        "SELECT t.alert_id, t.alert_uuid = a.uuid FROM investments_alerttrigger t "
        "JOIN investments_alert a ON a.id = t.alert_id ORDER BY 1"
    ) == [(10, True), (60, True)]


def test_set_not_null_is_proved_by_the_validated_check_without_a_scan(scratch):
    scratch.seed(alerts=500, triggers=100)
    scratch.migrate(APP, EXPAND)
    scratch.manage("backfill", "run", JOB)
    run_operations(scratch, CONTRACT[0], 0, 3, times=1)  # gate, CHECK NOT VALID, VALIDATE
    (set_not_null,) = operations_of(CONTRACT[0])[3].steps
    notices: list[str] = []
    with scratch.connect() as conn:
        conn.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary))
        with conn.transaction():
            conn.execute("SET LOCAL client_min_messages = debug1")
            for statement in set_not_null:
                conn.execute(statement)
    assert (
        'existing constraints on column "investments_alert.uuid" are sufficient to prove that '
        "it does not contain nulls"
    ) in notices


# -- the gate --------------------------------------------------------------------------------


def test_the_contract_waits_for_a_big_backfill_and_goes_through_once_it_is_done(scratch):
    alerts, triggers = 12_000, 3_000  # more than the gate finishes inline (10,000)
    scratch.seed(alerts, triggers)
    scratch.migrate(APP, EXPAND)

    stopped = scratch.manage("migrate", APP, check=False)
    assert stopped.returncode == 8  # pending
    assert "data job alerts_uuid (needed by investments) is not finished" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert f"0 of ~{alerts:,} rows" in stopped.stderr
    assert "python manage.py backfill run alerts_uuid" in stopped.stderr
    assert scratch.applied()[-1] == EXPAND  # nothing past the gate, not even in part
    assert scratch.scalar("SELECT count(*) FROM investments_alert WHERE uuid IS NULL") == alerts
    assert scratch.scalar(
        "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%uuid_not_null'"
    ) == 0

    scratch.manage("backfill", "run", JOB)  # what the message says to do
    scratch.migrate(APP)
    assert_contracted(scratch, alerts, triggers)


def test_a_small_database_migrates_from_legacy_to_the_end_in_one_go(scratch):
    scratch.seed(alerts=600, triggers=200)
    scratch.migrate()  # every app, as a deploy runs it
    assert_contracted(scratch, 600, 200)
    assert scratch.run()["status"] == "finished"
    assert scratch.scalar(
        "SELECT count(*) FROM migrations_worker_jobrunevent e JOIN migrations_worker_jobrun r "
        "ON r.id = e.run_id WHERE r.job_name = %s AND e.actor = 'migrate'", [JOB]
    ) > 0


# -- re-running after a failure --------------------------------------------------------------

RUN_OPERATIONS = """
import importlib, sys
from django.db import connection
name, first, last, times = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
migration = importlib.import_module("investments.migrations." + name).Migration
for operation in migration.operations[first:last]:
    for _ in range(times):
        with connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("investments", editor, None, None)
"""


def run_operations(db: AlertsDatabase, migration: str, first: int, last: int, times: int):
    db.script(RUN_OPERATIONS, migration, str(first), str(last), str(times))


def operations_of(migration: str) -> list:
    return importlib.import_module(f"investments.migrations.{migration}").Migration.operations


def test_every_contract_step_runs_again_harmlessly_after_it_ran(scratch):
    scratch.seed(alerts=3_000, triggers=1_000)
    scratch.migrate(APP, EXPAND)
    run_operations(scratch, EXPAND, 0, 1, times=2)  # the expand's DDL, again
    scratch.manage("backfill", "run", JOB)
    for migration in CONTRACT:
        # Each step twice in a row, as a retry after a lost connection would...
        run_operations(scratch, migration, 0, len(operations_of(migration)), times=2)
        # ...then the whole migration once more, as `migrate` re-runs one that died before
        # it was recorded.
        scratch.migrate(APP, migration)
    assert_contracted(scratch, 3_000, 1_000)


@pytest.mark.parametrize("done", [1, 2, 3, 4, 5])
def test_a_key_swap_that_died_half_way_completes_when_migrate_runs_again(scratch, done):
    scratch.seed(alerts=2_000, triggers=700)
    scratch.migrate(APP, CONTRACT[-2])  # small: the gate finishes the job inline
    run_operations(scratch, CONTRACT[-1], 0, done, times=1)  # ...and then the process died
    primary = scratch.scalar(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary"
    )
    assert primary == ("uuid" if done >= 4 else "id")
    scratch.migrate(APP)
    assert_contracted(scratch, 2_000, 700)


# -- the migrations as SQL and as model state ------------------------------------------------


def test_the_migrations_run_only_their_own_lock_safe_sql_and_the_state_matches_the_models():
    connection.ensure_connection()
    for migration in [EXPAND, *CONTRACT]:
        out = StringIO()
        call_command("sqlmigrate", APP, migration, stdout=out)
        rest = out.getvalue()
        for operation in operations_of(migration):
            if hasattr(operation, "create_sql"):
                statements = [operation.create_sql().as_string(connection.connection)]
            else:
                statements = [s for step in getattr(operation, "steps", []) for s in step]
            for statement in statements:
                statement = statement.rstrip(";")
                assert statement in rest, f"{migration}: {statement}"
                rest = rest.replace(statement, "", 1)
        # What is left: comments, the timeouts, semicolons. No DDL of Django's (no AlterField).
        leftover = [
            line for line in rest.splitlines()
            if line.strip(" ;") and not line.startswith(("--", "SET lock_timeout", "SET statement"))
        ]
        assert leftover == [], f"{migration} runs SQL of its own: {leftover}"
    call_command("makemigrations", APP, "--check", "--dry-run", stdout=StringIO())


# -- the finished schema and the ORM (the test database, migrated from zero) -----------------


@pytest.fixture
def owner():
    from django.contrib.auth.models import User

    from assets.models import Asset, Country, Currency, Exchange

    user = User.objects.create_user("alerting")
    country = Country.objects.create(iso_code="US", name="United States")
    currency = Currency.objects.create(code="USD", name="US dollar")
    exchange = Exchange.objects.create(mic="XNYS", name="NYSE", country=country,
                                       currency=currency)
    asset = Asset.objects.create(ticker="ACME", name="Acme", exchange=exchange, currency=currency)
    return user, asset


def raw_sql(query: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def test_a_database_migrated_from_zero_has_alerts_on_a_uuid_key():
    assert raw_sql(
        "SELECT a.attname, t.typname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary"
    ) == [("uuid", "uuid")]
    assert sorted(raw_sql(
        "SELECT conname, convalidated FROM pg_constraint "
        "WHERE conrelid = 'investments_alerttrigger'::regclass AND contype = 'f'"
    )) == [("investments_alerttrigger_alert_id_fk", True),
           ("investments_alerttrigger_alert_uuid_fk", True)]


def test_new_code_gets_uuids_and_legacy_numbers_from_the_database(owner):
    user, asset = owner
    alert = Alert.objects.create(user=user, asset=asset, condition="above", threshold=10)
    trigger = AlertTrigger.objects.create(alert=alert, triggered_at=timezone.now(), price=11)

    assert isinstance(alert.pk, uuid.UUID)
    assert alert.legacy_id is not None
    assert trigger.alert_id == alert.pk and trigger.legacy_alert_id == alert.legacy_id
    assert raw_sql(OLD_READ_ALERT, [alert.legacy_id])[0][0] == alert.legacy_id  # old code sees it
    assert list(alert.triggers.all()) == [trigger]


def test_old_code_rows_get_their_uuids_and_new_code_reads_them(owner):
    user, asset = owner
    (legacy_id,) = raw_sql(OLD_INSERT_ALERT, [user.pk, asset.pk, 7])[0]
    raw_sql(OLD_INSERT_TRIGGER, [legacy_id, 8])

    alert = Alert.objects.get(legacy_id=legacy_id)
    trigger = alert.triggers.get()
    assert trigger.legacy_alert_id == legacy_id and trigger.alert == alert


def test_either_code_moving_a_trigger_keeps_both_references_in_step(owner):
    user, asset = owner
    first, second, third = (
        Alert.objects.create(user=user, asset=asset, condition="above", threshold=n)
        for n in (1, 2, 3)
    )
    trigger = AlertTrigger.objects.create(alert=first, triggered_at=timezone.now(), price=1)

    trigger.alert = second  # new code: `save()` writes the stale legacy_alert_id back too
    trigger.save()
    trigger.refresh_from_db()
    assert (trigger.alert_id, trigger.legacy_alert_id) == (second.pk, second.legacy_id)

    raw_sql("UPDATE investments_alerttrigger SET alert_id = %s WHERE id = %s",
        [third.legacy_id, trigger.pk])  # old code
    trigger.refresh_from_db()
    assert (trigger.alert_id, trigger.legacy_alert_id) == (third.pk, third.legacy_id)


def test_references_that_disagree_or_point_nowhere_are_refused(owner):
    user, asset = owner
    first, second = (
        Alert.objects.create(user=user, asset=asset, condition="above", threshold=n)
        for n in (1, 2)
    )
    with pytest.raises(IntegrityError, match="name different alerts"), transaction.atomic():
        raw_sql(
            "INSERT INTO investments_alerttrigger (alert_id, alert_uuid, triggered_at, price, "
            "notified) VALUES (%s, %s, now(), 1, false)",
            [first.legacy_id, second.pk],
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_sql(OLD_INSERT_TRIGGER, [10**9, 1])
    AlertTrigger.objects.create(alert=first, triggered_at=timezone.now(), price=1)
    with pytest.raises(IntegrityError), transaction.atomic():  # old code deleting by number
        raw_sql("DELETE FROM investments_alert WHERE id = %s", [first.legacy_id])

    first.delete()  # soft delete, as before
    assert Alert.all_objects.get(pk=first.pk).is_deleted
    first.hard_delete()  # Django's cascade goes through the UUID reference
    assert not AlertTrigger.objects.filter(legacy_alert_id=first.legacy_id).exists()
    assert Alert.objects.filter(pk=second.pk).exists()
