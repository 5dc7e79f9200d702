"""Lock discipline of schema changes (`operations/ddl.py`, `operations/indexes.py`) against real
PostgreSQL: a DDL statement asks for its lock under a short lock_timeout, gives up, backs off and
asks again following its timing table (operations/lock_retry.py), and never fails on anything but
the lock.

How long the application waits behind a step is a latency, measured by the benchmark
(bench/README.md, "DDL lock waits"), not asserted here."""

import logging
import re
import threading

import psycopg
import pytest
from django.db import connection, models
from django.db.migrations.operations import AddField
from django.db.migrations.state import ModelState, ProjectState
from django.db.utils import OperationalError, ProgrammingError

from migrations_worker.exceptions import InsideTransaction
from migrations_worker.models import HoldKind
from migrations_worker.operations.ddl import Safely, SafeSQL, run_callable_step, run_step
from migrations_worker.operations.indexes import CreateIndexConcurrently, index_state
from migrations_worker.operations.lock_retry import LockRetry
from migrations_worker.runs.throttle import Hold, Tuning, health_hold
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
LOCK_TIMEOUT_MS = [50, 200]  # the site's escalation in these tests: first request, cap
CONCURRENT_LOCK_TIMEOUT_MS = 600  # CONCURRENTLY blocks no writer, so it may wait longer
FAST = LockRetry.resolve({"timings": [[100, 50]] * 40})


def url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def execute(sql: str, params=None) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def probe_tables():
    execute("CREATE TABLE ddl_probe_a (id bigserial PRIMARY KEY, v int)")
    execute("CREATE TABLE ddl_probe_b (id bigserial PRIMARY KEY, v int)")
    execute("INSERT INTO ddl_probe_a (v) SELECT g FROM generate_series(1, 100) g")
    yield
    execute("DROP TABLE IF EXISTS ddl_probe_a, ddl_probe_b")


@pytest.fixture
def fast_policy(settings):
    """The project-wide timing table, as settings set it, scaled down so the tests run quickly."""
    settings.MIGRATIONS_WORKER = {
        **settings.MIGRATIONS_WORKER,
        "DDL": {"lock_timeout_ms": LOCK_TIMEOUT_MS, "sleep_ms": [50, 200], "attempts": 40,
                "concurrent_lock_timeout_ms": CONCURRENT_LOCK_TIMEOUT_MS},
    }


class LockHolder:
    """Another session with an open transaction that has read `table` (ACCESS SHARE): harmless
    to other readers and writers, but an ALTER TABLE must wait for it to end."""

    def __init__(self, table: str):
        self.conn = psycopg.connect(url(), application_name="lock-holder")
        self.conn.execute(f"SELECT count(*) FROM {table}")

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.conn.commit)
        timer.start()
        return timer

    def close(self) -> None:
        self.conn.close()


def retry_waits_ms(caplog) -> list[float]:
    return [float(m) for r in caplog.records
            for m in re.findall(r"retrying in (\d+)ms", r.getMessage())]


def refused_lock_timeouts_ms(caplog) -> list[int]:
    return [int(m) for r in caplog.records
            for m in re.findall(r"lock_timeout (\d+)ms\)", r.getMessage())]


def test_migration_waits_out_a_lock_holder_by_retrying_after_lock_timeout(
    probe_tables, fast_policy, caplog
):
    caplog.set_level(logging.INFO, logger="migrations_worker.ddl")
    holder = LockHolder("ddl_probe_a")
    holder.release_after(1.5)
    try:
        operation = SafeSQL([["ALTER TABLE ddl_probe_a ADD COLUMN note text"]],
                            description="add ddl_probe_a.note")
        with connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("tests", editor, None, None)
    finally:
        holder.close()

    assert execute("SELECT count(note) FROM ddl_probe_a") == [(0,)]  # the column is there
    # It waited for the holder by giving up after each short lock_timeout and asking again,
    # logging each wait, the requests growing along the site's table up to its cap.
    refused = refused_lock_timeouts_ms(caplog)
    assert len(refused) >= 2
    schedule = [lock for lock, _sleep in LockRetry.resolve().timings]
    assert refused == schedule[:len(refused)]
    assert refused[0] == LOCK_TIMEOUT_MS[0] and max(refused) <= LOCK_TIMEOUT_MS[1]
    assert any("lock granted on attempt" in r.getMessage() for r in caplog.records)


def test_other_errors_are_not_retried(probe_tables, caplog):
    caplog.set_level(logging.INFO, logger="migrations_worker.ddl")
    with pytest.raises(ProgrammingError, match="ddl_probe_missing"):
        run_step(["ALTER TABLE ddl_probe_missing ADD COLUMN x int"], lock_retry=FAST)
    assert retry_waits_ms(caplog) == []


def test_each_attempt_runs_under_its_row_of_the_timing_table_and_the_last_refusal_fails(
    probe_tables, caplog
):
    caplog.set_level(logging.INFO, logger="migrations_worker.ddl")
    table = LockRetry.resolve({"timings": [[30, 40], [60, 80], [90, 120], [120, 160]]})
    seen = []

    def step() -> None:
        seen.append(execute("SELECT current_setting('lock_timeout')")[0][0])
        execute("LOCK TABLE ddl_probe_a IN ACCESS EXCLUSIVE MODE")

    holder = LockHolder("ddl_probe_a")
    try:
        with pytest.raises(OperationalError) as refused:
            run_callable_step(step, lock_retry=table)
    finally:
        holder.close()
    assert getattr(refused.value.__cause__, "sqlstate", "") == "55P03"
    assert seen == ["30ms", "60ms", "90ms", "120ms"]  # one request per row, none after the last
    waits = retry_waits_ms(caplog)
    assert len(waits) == 3  # a back-off after every refused request but the last
    for (_lock, sleep), waited in zip(table.timings, waits, strict=False):
        assert sleep / 2 - 1 <= waited <= sleep + 1  # jittered: at least half of it
    assert "attempt 1/4, lock_timeout 30ms" in caplog.records[0].getMessage()


def test_lock_and_statement_timeouts_come_from_settings_and_long_steps_lift_the_latter(
    fast_policy
):
    seen = {}

    def show(name: str):
        def step() -> None:
            seen[name] = execute("SELECT current_setting('lock_timeout'), "
                                 "current_setting('statement_timeout')")[0]
        return step

    run_callable_step(show("short"))
    run_callable_step(show("long"), long_running=True)
    run_callable_step(show("outside a transaction"), long_running=True, in_transaction=False)

    first = f"{LOCK_TIMEOUT_MS[0]}ms"
    assert seen["short"] == (first, "1min")
    assert seen["long"] == (first, "0")
    assert seen["outside a transaction"] == (f"{CONCURRENT_LOCK_TIMEOUT_MS}ms", "0")
    # Session-level settings of a non-transactional step do not outlive it.
    assert execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')") \
        == [("0", "0")]


def test_an_operations_own_lock_retry_replaces_the_sites_for_its_steps(probe_tables, fast_policy):
    record = ("INSERT INTO ddl_probe_b (v) "
              "SELECT replace(current_setting('lock_timeout'), 'ms', '')::int")
    own = SafeSQL([[record]], lock_retry={"lock_timeout_ms": [7, 70]})
    site = SafeSQL([[record]])
    for operation in (own, site):
        with connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("tests", editor, None, None)
    assert execute("SELECT v FROM ddl_probe_b ORDER BY id") == [(7,), (LOCK_TIMEOUT_MS[0],)]
    # A migration file writes it back as it was given, and leaves it out when not given.
    assert own.deconstruct()[2]["lock_retry"] == {"lock_timeout_ms": [7, 70]}
    assert "lock_retry" not in site.deconstruct()[2]


def test_steps_refuse_to_run_inside_a_transaction():
    from django.db import transaction

    with transaction.atomic(), pytest.raises(InsideTransaction, match="atomic = False"):
        run_step(["SELECT 1"])


def test_create_index_concurrently_rebuilds_an_index_a_failed_build_left_invalid(probe_tables):
    execute("UPDATE ddl_probe_a SET v = 1 WHERE id <= 2")  # a duplicate: the unique build fails
    operation = CreateIndexConcurrently("ddl_probe_a_v_uniq", "ddl_probe_a", ["v"], unique=True)

    def apply() -> None:
        with connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("tests", editor, None, None)

    with pytest.raises(Exception, match="could not create unique index"):
        apply()
    assert index_state("ddl_probe_a_v_uniq") == "invalid"

    execute("UPDATE ddl_probe_a SET v = -id WHERE id <= 2")
    apply()  # the re-run drops the INVALID index and builds it again
    assert index_state("ddl_probe_a_v_uniq") == "valid"
    apply()  # and a second re-run keeps the valid one
    assert execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'ddl_probe_a_v_uniq'") \
        == [(1,)]


def test_safely_retry_leaves_no_deferred_sql_of_the_failed_attempt_behind(
    probe_tables, fast_policy, caplog
):
    """Regression: a refused attempt used to leave its deferred CREATE INDEX in the schema
    editor, which ran it a second time on exit and failed the migration after success."""
    caplog.set_level(logging.INFO, logger="migrations_worker.ddl")
    state = ProjectState()
    for name, table in (("ProbeA", "ddl_probe_a"), ("ProbeB", "ddl_probe_b")):
        state.add_model(ModelState("ddl_probe", name, [
            ("id", models.BigAutoField(primary_key=True)), ("v", models.IntegerField(null=True)),
        ], options={"db_table": table}))
    operation = Safely(
        AddField("probea", "code", models.IntegerField(null=True, db_index=True)),
        AddField("probeb", "note", models.TextField(null=True)),
    )
    after = state.clone()
    operation.state_forwards("ddl_probe", after)
    holder = LockHolder("ddl_probe_b")  # the second operation's table is busy for a while
    holder.release_after(1.0)
    try:
        with connection.schema_editor(atomic=False) as editor:
            operation.database_forwards("ddl_probe", editor, state, after)
    finally:
        holder.close()

    assert len(retry_waits_ms(caplog)) >= 1
    indexes = execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ddl_probe_a' "
                      "AND indexdef LIKE '%%(code)%%'")
    assert len(indexes) == 1


def test_sqlmigrate_output_shows_the_timeouts_each_step_runs_under(fast_policy):
    editor = connection.schema_editor(collect_sql=True, atomic=False)
    SafeSQL([["ALTER TABLE t ADD COLUMN c int"]]).database_forwards("tests", editor, None, None)
    CreateIndexConcurrently("t_c_idx", "t", ["c"]).database_forwards("tests", editor, None, None)
    assert editor.collected_sql == [
        f"SET lock_timeout = '{LOCK_TIMEOUT_MS[0]}ms';",
        "SET statement_timeout = '60000ms';",
        "ALTER TABLE t ADD COLUMN c int;",
        f"SET lock_timeout = '{CONCURRENT_LOCK_TIMEOUT_MS}ms';",
        "SET statement_timeout = '0';",
        'CREATE INDEX CONCURRENTLY "t_c_idx" ON "t" ("c");',
    ]


def test_a_step_backing_off_from_a_lock_puts_running_jobs_on_hold_until_it_ends(probe_tables):
    """Refused, a step tells the jobs (a shared advisory lock their health check reads): a job's
    batches holding row locks on its table are the likely reason, so they step aside."""
    tables = ("ddl_probe_a",)
    tuning = Tuning.resolve({})
    assert health_hold(tables, tuning, using="default") is None
    holder = LockHolder("ddl_probe_a")
    outcome = {}

    def migrate() -> None:
        try:
            run_step(["ALTER TABLE ddl_probe_a ADD COLUMN later int"],
                     lock_retry=LockRetry.resolve({"timings": [[30, 100]] * 100}))
            outcome["done"] = True
        finally:
            connection.close()

    step = threading.Thread(target=migrate)
    step.start()
    try:
        # While its lock request waits, the step is a lock waiter on the table (that check
        # comes first); between its attempts it is backing off, which is what the job is told.
        seen = []
        wait_until(lambda: seen.append(health_hold(tables, tuning, using="default"))
                   or getattr(seen[-1], "kind", None) == HoldKind.DDL_BACKOFF, 10,
                   message="the job to be told")
        assert seen[-1] == Hold(HoldKind.DDL_BACKOFF,
                                "1 deploy step(s) backing off from a lock: stepping aside")
        assert {hold.kind for hold in seen if hold} <= {HoldKind.LOCK_WAITERS, HoldKind.DDL_BACKOFF}
    finally:
        holder.close()  # the step's next request is granted
    step.join(30)
    assert outcome == {"done": True}
    assert health_hold(tables, tuning, using="default") is None  # and the jobs go on
