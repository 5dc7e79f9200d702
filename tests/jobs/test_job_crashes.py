"""Each schema-fix job survives a worker SIGKILLed in the middle of a batch and ends exactly as
an undisturbed run of the same job on the same seed."""

from __future__ import annotations

import signal

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests.scratch import ScratchDatabase
from tests.workers import Processes, flush_broker, wait_until

# Per job: the migration that enqueues it, and queries whose answers are its result.
CASES = {
    "legacy_columns": (
        "0008_retire_legacy_text_fields",
        [
            "SELECT asset_id, field, value, outcome, matched_id FROM assets_assetlegacytext "
            "ORDER BY 1, 2, 3",
            "SELECT id, sector_ref_id, industry_ref_id FROM assets_asset ORDER BY id",
        ],
    ),
    "ticker_dedup": (
        "0012_enqueue_ticker_dedup",
        [
            "SELECT id, ticker, exchange_id, is_deleted FROM assets_asset ORDER BY id",
            "SELECT id, portfolio_id, asset_id, quantity, average_cost, is_deleted "
            "FROM portfolios_holding ORDER BY id",
            "SELECT id, user_id, asset_id FROM investments_watchlist ORDER BY id",
            "SELECT id, asset_id, timestamp FROM assets_assetpriceshistoric ORDER BY id",
            "SELECT newsarticle_id, asset_id FROM investments_newsarticle_assets ORDER BY 1, 2",
            "SELECT id, asset_id FROM investments_alert ORDER BY id",
            "SELECT group_id, survivor_id, table_name, row_key, action, before "
            "FROM assets_assetmergearchive ORDER BY table_name, row_key::bigint, action",
        ],
    ),
}


def prepared(name: str, job: str, broker: str) -> ScratchDatabase:
    db = ScratchDatabase(f"{connection.settings_dict['NAME']}_{name}").create()
    db.env["TEST_REDIS_URL"] = broker
    db.migrate_legacy()
    db.manage("seed_demo", "--size", "small", "--seed", "11")
    db.manage("migrate", "assets", CASES[job][0], "-v", "0")
    return db


def result_of(db: ScratchDatabase, job: str) -> list:
    assert db.scalar(
        "SELECT status FROM migrations_worker_jobrun WHERE job_name = %s ORDER BY id DESC LIMIT 1",
        [job],
    ) == "finished"
    return [db.rows(query) for query in CASES[job][1]]


@pytest.mark.slow
@pytest.mark.parametrize("job", list(CASES))
def test_job_killed_mid_batch_ends_exactly_like_an_undisturbed_run(job, tmp_path, transactional_db):
    # The calm run is worked inline; its broker is unreachable, so nothing it enqueues can reach
    # the crash run's workers.
    calm_broker, crash_broker = "redis://127.0.0.1:1/0", settings.CELERY_BROKER_URL
    flush_broker(crash_broker)
    calm = prepared("calm", job, calm_broker)
    crash = prepared("crash", job, crash_broker)
    # Worker processes: one is SIGKILLed mid-batch; they serve the scratch database (env).
    procs = Processes({**crash.env}, tmp_path)
    try:
        calm.manage("backfill", "run", job)
        expected = result_of(calm, job)

        # Hold a lock every batch's writes need, so the worker sits inside a batch.
        blocker = psycopg.connect(crash.url)
        blocker.execute("LOCK TABLE assets_asset IN SHARE MODE")
        procs.worker("w1")
        procs.beat()
        wait_until(lambda: crash.scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted "
            "AND relation = 'assets_asset'::regclass") > 0,
            60, 0.02, "a batch blocked inside its transaction")
        procs.kill("w1", signal.SIGKILL)
        blocker.rollback()
        blocker.close()

        procs.worker("w2")
        wait_until(lambda: crash.scalar(
            "SELECT status FROM migrations_worker_jobrun WHERE job_name = %s", [job]) == "finished",
            180, 0.5, f"{job} to finish after the crash")
        assert result_of(crash, job) == expected
        assert crash.scalar(
            "SELECT max(attempts) FROM migrations_worker_jobbatch") >= 2  # one was redone
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        calm.drop()
        crash.drop()
