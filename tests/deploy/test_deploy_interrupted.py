"""The deploy step itself interrupted: `migrate_online` SIGKILLed in the middle of each kind of
lock-safe operation (a concurrent index build, a constraint validation, the primary-key swap),
or cut off from its database while it waits at a gate. Whatever was left half-done, running the
deploy again completes it, and `--postflight` finds no INVALID index and no unvalidated
constraint.

The deploy is stopped at the exact operation by the database itself: an application
transaction that the index build must wait out, or an event trigger (a superuser's tool, hence
the private server) that parks the session at the end of the ALTER TABLE in question until the
test lets go of an advisory lock. Nothing about the deploy is faked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import psycopg
import pytest

from tests.chaos.database import Database
from tests.chaos.services import PrivatePostgres
from tests.workers import wait_until

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
DEPLOY_APP = "deploy-under-test"
PARK_KEY = 4242
PARK_FUNCTION = """
CREATE OR REPLACE FUNCTION test_park_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_query() ILIKE %s THEN
        PERFORM pg_advisory_lock({key});
        PERFORM pg_advisory_unlock({key});
    END IF;
END
$$
"""


@pytest.fixture(scope="module")
def server():
    pg = PrivatePostgres().start()
    template = Database(pg.create_database("interrupted_template"), UNREACHABLE_BROKER)
    template.migrate_legacy()
    template.manage("seed_demo", "--size", "small", "--seed", "5")
    yield pg
    pg.stop()


@pytest.fixture
def db(server, request) -> Database:
    """A seeded legacy database; its gates finish their jobs inline, so one deploy that is not
    interrupted runs to the end without workers."""
    name = "interrupted_" + "".join(c for c in request.node.name if c.isalnum())[-40:].lower()
    url = server.create_database(name, template="interrupted_template")
    yield Database(url, UNREACHABLE_BROKER, MW_GATE_INLINE_LIMIT=str(10**9),
                   DB_APPLICATION_NAME=DEPLOY_APP)
    server.drop_database(name)


def deploy_sessions(db: Database, query_like: str = "%") -> list[tuple]:
    return db.rows("SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity "
                   "WHERE application_name = %s AND query ILIKE %s", [DEPLOY_APP, query_like])


def waiting(db: Database, query_like: str, wait_event: str) -> bool:
    return any(row[1] == "active" and row[3] == wait_event for row in deploy_sessions(db, query_like))


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def park_at(db: Database, statement_like: str) -> psycopg.Connection:
    """Park the deploy's session at the end of the ALTER TABLE whose statement matches, until
    the returned connection lets go of its advisory lock."""
    with db.connect() as conn:
        conn.execute(PARK_FUNCTION.replace("{key}", str(PARK_KEY)).replace("%s", "'" + statement_like + "'"))
        conn.execute("CREATE EVENT TRIGGER test_park_ddl ON ddl_command_end "
                     "WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION test_park_ddl()")
    holder = db.connect()
    holder.execute("SELECT pg_advisory_lock(%s)", [PARK_KEY])
    return holder


def unpark(db: Database, holder: psycopg.Connection) -> None:
    with db.connect() as conn:
        conn.execute("DROP EVENT TRIGGER IF EXISTS test_park_ddl")
        conn.execute("DROP FUNCTION IF EXISTS test_park_ddl()")
    holder.close()


def rerun_completes(db: Database) -> str:
    """The pipeline runs the deploy again: it completes, and leaves nothing half-built."""
    rerun = db.manage("migrate_online", "--stage", "all", check=False)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-3000:]
    assert "nothing pending" in rerun.stdout
    post = db.manage("migrate_online", "--postflight", check=False)
    assert post.returncode == 0, post.stdout + post.stderr
    assert db.rows("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid") == []
    assert db.rows("SELECT conname FROM pg_constraint WHERE NOT convalidated") == []
    assert db.manage("migrate_online", "--check", check=False).returncode == 0
    return output


def killed_session_ends(db: Database, query_like: str) -> None:
    """The killed deploy's server session must not live on (holding the deploy lock and its
    table locks) until its statement ends by itself."""
    wait_until(lambda: not deploy_sessions(db, query_like), 5, 0.1,
               "the killed deploy's database session to end")


def test_sigkill_during_a_concurrent_index_build_a_rerun_rebuilds_it_and_nothing_is_left_invalid(
    db, tmp_path
):
    app = db.connect()
    app.autocommit = False
    app.execute("LOCK TABLE portfolios_holding IN ROW EXCLUSIVE MODE")  # an open write
    proc = db.popen("migrate_online", "--stage", "all", log=tmp_path / "deploy.log")
    wait_until(lambda: waiting(db, "%CREATE INDEX CONCURRENTLY%holding%", "virtualxid"), 120, 0.05,
               "the index build to wait for the application's transaction")
    kill(proc)

    killed_session_ends(db, "%CONCURRENTLY%")
    assert db.scalar("SELECT NOT indisvalid FROM pg_index "
                     "WHERE indexrelid = 'idx_portfolios_holding_portfolio_asset'::regclass")
    threading.Timer(2.0, app.rollback).start()  # the application commits while the rerun waits
    output = rerun_completes(db)
    assert "idx_portfolios_holding_portfolio_asset is INVALID (a failed build); dropping it" in output
    app.close()


def test_sigkill_during_a_constraint_validation_a_rerun_validates_it(db, tmp_path):
    holder = park_at(db, "%VALIDATE CONSTRAINT%")
    proc = db.popen("migrate_online", "--stage", "all", log=tmp_path / "deploy.log")
    wait_until(lambda: waiting(db, "%VALIDATE CONSTRAINT%", "advisory"), 180, 0.05,
               "a constraint validation to run")
    validating = db.rows("SELECT conname FROM pg_constraint WHERE NOT convalidated")
    kill(proc)

    killed_session_ends(db, "%VALIDATE CONSTRAINT%")
    assert validating and db.rows(
        "SELECT conname FROM pg_constraint WHERE NOT convalidated") == validating
    unpark(db, holder)
    rerun_completes(db)


def test_sigkill_during_the_primary_key_swap_a_rerun_completes_the_swap(db, tmp_path):
    holder = park_at(db, "%PRIMARY KEY USING INDEX%")
    proc = db.popen("migrate_online", "--stage", "all", log=tmp_path / "deploy.log")
    wait_until(lambda: waiting(db, "%PRIMARY KEY USING INDEX%", "advisory"), 240, 0.05,
               "the key swap to run")
    kill(proc)

    killed_session_ends(db, "%PRIMARY KEY USING INDEX%")
    primary_key = ("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                   "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'investments_alert'::regclass "
                   "AND i.indisprimary")
    assert db.rows(primary_key) == [("id",)]  # the swap rolled back whole, not half-applied
    unpark(db, holder)
    rerun_completes(db)
    assert db.rows(primary_key) == [("uuid",)]
    assert db.scalar("SELECT count(*) FROM investments_alerttrigger t JOIN investments_alert a "
                     "ON a.uuid = t.alert_uuid AND a.id = t.alert_id") == db.scalar(
        "SELECT count(*) FROM investments_alerttrigger")


def test_a_deploy_cut_off_from_its_database_while_waiting_at_a_gate_reconnects_and_finishes(
    db, tmp_path
):
    db.env["MW_GATE_INLINE_LIMIT"] = "0"  # every gate waits for its job, as on a big database
    log = tmp_path / "deploy.log"
    proc = db.popen("migrate_online", "--stage", "all", "--wait", "--poll", "0.2", log=log)
    wait_until(lambda: "waits for job alerts_uuid" in log.read_text(), 120, 0.2,
               "the deploy to wait at the alerts_uuid gate")
    with db.connect() as conn:  # an administrator (or a failover) ends the deploy's session
        assert conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = %s", [DEPLOY_APP]).fetchone()[0] >= 1
    for job in ("legacy_columns", "alerts_uuid"):
        db.manage("backfill", "run", job)
    wait_until(lambda: db.scalar("SELECT count(*) FROM migrations_worker_jobrun "
                                 "WHERE job_name = 'ticker_dedup'") > 0 or proc.poll() is not None,
               120, 0.2, "the deploy to go on to the ticker_dedup gate")
    assert proc.poll() is None, log.read_text()[-3000:]  # before the fix: exit 1, connection closed
    db.manage("backfill", "run", "ticker_dedup")
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "lost the database connection" in output and "reconnecting" in output
    assert "nothing pending" in output
    post = db.manage("migrate_online", "--postflight", check=False)
    assert post.returncode == 0, post.stdout
