"""The five schema fixes, end to end, on a `seed_demo` database under live application load,
with real Celery workers: the final schema read from the catalog, and nothing lost, counted."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from seed.live_load import LiveLoad
from tests import oracle
from tests.scratch import ScratchDatabase
from tests.workers import Processes, flush_broker

SOFT_DELETE_TABLES = [
    "assets_country", "assets_sector", "assets_industry", "assets_currency",
    "portfolios_benchmark", "investments_newsarticle", "investments_alert",
]
INDEXES = {
    "idx_portfolios_holding_portfolio_asset": "portfolios_holding",
    "idx_assets_priceshistoric_asset_timestamp": "assets_assetpriceshistoric",
    "idx_investments_watchlist_user_asset": "investments_watchlist",
}
LOCK_TIMEOUT_S = 2.0


@pytest.fixture
def seeded(tmp_path, request):
    db = ScratchDatabase(f"{connection.settings_dict['NAME']}_fixes").create()
    db.env["MW_GATE_INLINE_LIMIT"] = "0"  # a small seed, but every gate must stop as on a big one
    db.migrate_legacy()
    db.manage("seed_demo", "--size", "small", "--seed", "7")
    yield db
    db.drop()


@pytest.fixture
def workers(seeded, tmp_path, request):
    from django.conf import settings

    flush_broker(settings.CELERY_BROKER_URL)
    procs = Processes({**seeded.env, "TEST_REDIS_URL": settings.CELERY_BROKER_URL}, tmp_path)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


def deploy(db: ScratchDatabase, timeout: float = 600) -> str:
    """The deploy step: apply what is safe, wait at each gate for its job, go on."""
    return db.manage("migrate_online", "--stage", "all", "--wait", "--timeout", str(timeout),
                     "--poll", "0.5", timeout=timeout + 60).stdout


def snapshot(db: ScratchDatabase) -> dict:
    groups = db.rows(
        "SELECT ticker, exchange_id, array_agg(id ORDER BY id) FROM assets_asset "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    member_to_group = {m: (t, e) for t, e, members in groups for m in members}
    live_quantity = defaultdict(Decimal)
    for portfolio, asset, quantity in db.rows(
        "SELECT portfolio_id, asset_id, quantity FROM portfolios_holding WHERE NOT is_deleted"
    ):
        live_quantity[(portfolio, member_to_group.get(asset, asset))] += quantity
    return {
        "alerts": {r[0] for r in db.rows("SELECT id FROM investments_alert")},
        "triggers": db.scalar("SELECT count(*) FROM investments_alerttrigger"),
        "groups": groups,
        "member_to_group": member_to_group,
        "live_quantity": live_quantity,
        "texts": set(db.rows(
            "SELECT id, 'sector', sector FROM assets_asset WHERE btrim(coalesce(sector, '')) <> '' "
            "UNION ALL SELECT id, 'industry', industry FROM assets_asset "
            "WHERE btrim(coalesce(industry, '')) <> ''"
        )),
        "assets": db.scalar("SELECT count(*) FROM assets_asset"),
    }


@pytest.mark.slow
def test_online_migration_under_live_load_loses_nothing_and_ends_in_the_fixed_schema(
    seeded, workers
):
    db = seeded
    before = snapshot(db)
    with db.connect() as conn, conn.cursor() as cursor:
        legacy = oracle.snapshot(cursor)
    want = oracle.expected(legacy)
    assert oracle.rows_compared(want) > 10_000
    assert len(before["groups"]) >= 5 and before["texts"] and before["alerts"]

    workers.worker("w1")
    workers.worker("w2")
    workers.beat()
    load = LiveLoad(db.url)
    load.start()
    time.sleep(1.0)  # the application is busy before the deploy starts
    output = deploy(db)
    time.sleep(0.5)
    result = load.stop()

    print(f"live load: {result.count} statements, p50 {result.percentile(50) * 1000:.1f} ms, "
          f"p99 {result.percentile(99) * 1000:.1f} ms, max {result.max_latency * 1000:.0f} ms, "
          f"{len(result.errors)} errors")
    # The live application: never an error, never a wait beyond lock_timeout.
    assert result.errors == []
    assert result.count > 100
    assert result.max_latency < LOCK_TIMEOUT_S, f"slowest statement {result.max_latency:.2f}s"
    for job in ("alerts_uuid", "legacy_columns", "ticker_dedup"):
        assert f"{job}" in output, output  # it stopped at each job's gate and went on after it

    # Final schema, from the catalog.
    assert db.scalar(
        "SELECT convalidated FROM pg_constraint WHERE conname = 'assets_asset_ticker_exchange_unique' "
        "AND contype = 'u'"
    ) is True
    for index, table in INDEXES.items():
        assert db.scalar(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND i.indrelid = %s::regclass", [index, table]
        ) is True, index
    assert db.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert db.scalar("SELECT count(*) FROM pg_constraint WHERE NOT convalidated") == 0
    for table in SOFT_DELETE_TABLES:
        columns = {r[0] for r in db.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table])}
        assert {"is_deleted", "deleted_at"} <= columns, table
    assert db.rows(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary"
    ) == [("uuid", "uuid")]
    references = db.rows(
        "SELECT a.attname, confrelid::regclass::text, convalidated FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'f' AND c.conrelid = 'investments_alerttrigger'::regclass ORDER BY 1"
    )
    assert references == [("alert_id", "investments_alert", True),
                          ("alert_uuid", "investments_alert", True)]
    asset_columns = {r[0] for r in db.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'assets_asset'")}
    assert not {"sector", "industry"} & asset_columns

    # No data loss, counted.
    alerts_after = db.scalar("SELECT count(*) FROM investments_alert")
    assert alerts_after == len(before["alerts"]) + len(result.alerts_inserted)
    assert db.scalar("SELECT count(DISTINCT uuid) FROM investments_alert") == alerts_after
    assert {r[0] for r in db.rows("SELECT id FROM investments_alert")} >= before["alerts"]
    assert db.scalar("SELECT count(*) FROM investments_alerttrigger") == (
        before["triggers"] + result.triggers_inserted
    )
    assert db.scalar(
        "SELECT count(*) FROM investments_alerttrigger t JOIN investments_alert a "
        "ON a.uuid = t.alert_uuid AND a.id = t.alert_id"
    ) == before["triggers"] + result.triggers_inserted
    uuids = dict(db.rows("SELECT id, uuid FROM investments_alert"))
    db.manage("backfill", "run", "alerts_uuid")  # a second pass...
    assert dict(db.rows("SELECT id, uuid FROM investments_alert")) == uuids  # ...changes nothing
    assert db.scalar("SELECT count(*) FROM assets_asset GROUP BY ticker, exchange_id "
                     "ORDER BY count(*) DESC LIMIT 1") == 1
    removed = sum(len(members) - 1 for _, _, members in before["groups"])
    assert db.scalar("SELECT count(*) FROM assets_asset") == (
        before["assets"] + result.assets_inserted - removed
    )
    archived_assets = {int(r[0]) for r in db.rows(
        "SELECT row_key FROM assets_assetmergearchive WHERE table_name = 'assets_asset' "
        "AND action = 'removed'")}
    assert len(archived_assets) == removed
    survivors = dict(db.rows("SELECT ticker || '/' || exchange_id, survivor_id "
                             "FROM assets_duplicatetickergroup"))
    live_after = defaultdict(Decimal)
    for portfolio, asset, quantity in db.rows(
        "SELECT portfolio_id, asset_id, quantity FROM portfolios_holding WHERE NOT is_deleted"
    ):
        live_after[(portfolio, asset)] += quantity
    for (portfolio, key), quantity in before["live_quantity"].items():
        asset = survivors[f"{key[0]}/{key[1]}"] if isinstance(key, tuple) else key
        assert live_after[(portfolio, asset)] == quantity, (portfolio, key)
    archived_texts = set(db.rows("SELECT asset_id, field, value FROM assets_assetlegacytext"))
    assert before["texts"] <= archived_texts

    # And every seeded row is what an independent oracle (plain Python over the legacy data, by
    # the design's rules) says it must be: the jobs' results, by natural keys.
    with db.connect() as conn, conn.cursor() as cursor:
        assert oracle.differences(want, oracle.actual(cursor, legacy)) == []

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
