"""The five schema fixes, end to end, on a `seed_demo` database under live application load,
with real Celery workers: the final schema read from the catalog, nothing lost (every row of
every table that refers to an asset or an alert accounted for), and the jobs' results as an
independent oracle computes them (the invariants of `tests.chaos.invariants`, shared with the
chaos run)."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from seed.live_load import LiveLoad
from tests.chaos.invariants import (
    ORACLE_CHECK,
    Before,
    Checked,
    LoadFigures,
    check_data,
    check_oracle,
    check_schema,
)
from tests.lock_waits import ServerLog, assert_no_application_waited
from tests.scratch import ScratchDatabase
from tests.workers import Processes, flush_broker

LOCK_TIMEOUT_S = 2.0
LOAD_APP = "live-load"  # the application's sessions, by the name the server logs them under
# The migrations that carry a RequireJob, and the job each waits for.
GATED = (
    ("assets", "0012_enqueue_ticker_dedup", "legacy_columns"),
    ("assets", "0013_drop_legacy_text_columns", "legacy_columns"),
    ("assets", "0014_asset_ticker_exchange_unique", "ticker_dedup"),
    ("investments", "0006_alert_uuid_not_null", "alerts_uuid"),
)


@pytest.fixture
def seeded(tmp_path, request):
    db = ScratchDatabase(f"{connection.settings_dict['TEST']['NAME']}_fixes").create()
    db.env["MW_GATE_INLINE_LIMIT"] = "0"  # a small seed, but every gate must stop as on a big one
    db.migrate_legacy()
    db.manage("seed_demo", "--size", "small", "--seed", "7")
    yield db
    db.drop()


@pytest.fixture
def workers(seeded, tmp_path, request):
    from django.conf import settings

    flush_broker(settings.CELERY_BROKER_URL)
    # Worker processes: they serve the scratch database under its own settings (by env).
    procs = Processes({**seeded.env, "TEST_REDIS_URL": settings.CELERY_BROKER_URL}, tmp_path)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


def deploy(db: ScratchDatabase, timeout: float = 600) -> str:
    """The deploy step: apply what is safe, wait at each gate for its job, go on."""
    return db.manage("migrate_online", "--stage", "all", "--wait", "--timeout", str(timeout),
                     "--poll", "0.5", timeout=timeout + 60).stdout


@pytest.mark.slow
def test_online_migration_under_live_load_loses_nothing_and_ends_in_the_fixed_schema(
    seeded, workers
):
    db = seeded
    before = Before.read(db)
    assert len(before.groups) >= 5 and before.texts and before.ids["investments_alert"]

    workers.worker("w1")
    workers.worker("w2")
    workers.beat()
    log = ServerLog(db.url)
    load = LiveLoad(f"{db.url}?application_name={LOAD_APP}")
    load.start()
    time.sleep(1.0)  # the application is busy before the deploy starts
    assert db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND application_name = %s", [LOAD_APP]) == 1  # the name its waits go by
    output = deploy(db)
    time.sleep(0.5)
    result = load.stop()

    print(f"live load: {result.count} statements, p50 {result.percentile(50) * 1000:.1f} ms, "
          f"p99 {result.percentile(99) * 1000:.1f} ms, max {result.max_latency * 1000:.0f} ms, "
          f"{len(result.errors)} errors")
    # The live application: never an error, never a statement beyond lock_timeout, and never a
    # lock wait the server logged (any longer than 100 ms, the README's bound).
    assert result.errors == []
    assert result.count > 100
    assert result.max_latency < LOCK_TIMEOUT_S, f"slowest statement {result.max_latency:.2f}s"
    assert_no_application_waited(log, database=db.name, applications={LOAD_APP})
    assert "nothing pending" in output, output
    # Each gated migration went in only after its job had finished on the workers (no gate runs
    # inline here). Whether the deploy had to wait at a gate depends on how fast the workers were,
    # so the order is read from the database, not from what the command printed.
    for app, migration, job in GATED:
        (applied,) = db.rows("SELECT applied FROM django_migrations WHERE app = %s AND name = %s",
                             [app, migration])[0]
        finished = db.rows("SELECT finished_at FROM migrations_worker_jobrun "
                           "WHERE job_name = %s AND status = 'finished' AND finished_at IS NOT NULL",
                           [job])
        assert finished, f"{job} never finished, yet {app}.{migration} was applied"
        assert max(at for (at,) in finished) < applied, (app, migration, job)

    # The fixed schema from the catalog; every row of every table that refers to an asset or an
    # alert accounted for (still there, on its survivor, or archived as removed; the load's
    # inserts on top, exactly); and every seeded row as the independent oracle says.
    checked = Checked()
    check_schema(db, checked)
    figures = LoadFigures(acknowledged={op: len(v) for op, v in result.latencies.items()},
                          ambiguous={}, alert_ids=list(result.alerts_inserted))
    check_data(db, before, figures, checked)
    check_oracle(db, before, checked)
    assert checked.rows[ORACLE_CHECK] > 10_000

    uuids = dict(db.rows("SELECT id, uuid FROM investments_alert"))
    db.manage("backfill", "run", "alerts_uuid")  # a second pass...
    assert dict(db.rows("SELECT id, uuid FROM investments_alert")) == uuids  # ...changes nothing

    # Every reference still resolves (the foreign keys are validated, see above) and a new
    # duplicate is refused.
    exchange, currency, ticker = db.rows(
        "SELECT exchange_id, currency_id, ticker FROM assets_asset ORDER BY id LIMIT 1")[0]
    with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO assets_asset (created_at, updated_at, is_deleted, ticker, name, "
            "exchange_id, currency_id) VALUES (now(), now(), false, %s, 'dup', %s, %s)",
            [ticker, exchange, currency],
        )
