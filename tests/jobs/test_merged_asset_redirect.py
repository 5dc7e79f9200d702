"""Writes that name a merged-away asset land on its survivor (migration assets 0012), rule by
rule, on the data set of `test_ticker_dedup` after the merge: ALPHA's duplicates 10 and 12 were
merged into 11, GAMMA's 16 into 15.

Both releases keep writing rows that name an id the merge removed (the previous release's users
have it on screen, the new release has it stored), and Django's `save()` inserts again a row it
cannot update; none of that may fail or be lost, and the merge rules hold for it too.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg
import pytest

from migrations_worker.job import get_job
from tests.jobs.conftest import JobDatabase
from tests.jobs.test_ticker_dedup import P1, P3, USER1, USER3, listed, merged  # noqa: F401

NOW = "now()"


@pytest.fixture
def db(merged) -> JobDatabase:  # noqa: F811
    copy = merged.copy("redirect")
    yield copy
    copy.drop()


def one(db: JobDatabase, query: str, params=None):
    rows = db.rows(query, params)
    assert len(rows) == 1, rows
    return rows[0]


def archived(db: JobDatabase, table: str, key: int) -> list[tuple]:
    return db.rows("SELECT action, (before ->> 'asset_id')::bigint FROM assets_assetmergearchive "
                   "WHERE table_name = %s AND row_key = %s ORDER BY id", [table, str(key)])


def add_holding(db: JobDatabase, portfolio, asset: int, quantity: str, cost: str,
                holding_id: int | None = None, deleted: bool = False) -> int:
    with db.connect() as conn:
        return conn.execute(
            "INSERT INTO portfolios_holding (id, portfolio_id, asset_id, quantity, average_cost, "
            "is_deleted, created_at, updated_at) VALUES (coalesce(%s, nextval("
            "pg_get_serial_sequence('portfolios_holding', 'id'))), %s, %s, %s, %s, %s, now(), now()) "
            "RETURNING id", [holding_id, portfolio, asset, quantity, cost, deleted]).fetchone()[0]


def live_position(db: JobDatabase, portfolio, asset: int) -> list[tuple]:
    return db.rows("SELECT id, quantity, average_cost FROM portfolios_holding "
                   "WHERE portfolio_id = %s AND asset_id = %s AND NOT is_deleted", [portfolio, asset])


# -- holdings ------------------------------------------------------------------------------------


def test_a_holding_naming_a_removed_asset_is_summed_into_the_portfolios_position_on_the_survivor(db):
    # P1 holds 40 of ALPHA at 175 after the merge (10 at 100 and 30 at 200, on holding 1002).
    assert live_position(db, P1, 11) == [(1002, Decimal("40.00000000"), Decimal("175.00000000"))]
    new = add_holding(db, P1, 12, "10", "75")

    assert live_position(db, P1, 11) == [(new, Decimal("50.00000000"), Decimal("155.00000000"))]
    assert archived(db, "portfolios_holding", new) == [("redirected", 12)]
    assert archived(db, "portfolios_holding", 1002)[-1] == ("removed", 11)


def test_a_soft_deleted_holding_naming_a_removed_asset_moves_as_it_is(db):
    new = add_holding(db, P1, 12, "5", "1", deleted=True)
    assert one(db, "SELECT asset_id, quantity FROM portfolios_holding WHERE id = %s", [new]) == (
        11, Decimal("5.00000000"))
    assert live_position(db, P1, 11) == [(1002, Decimal("40.00000000"), Decimal("175.00000000"))]


@pytest.mark.parametrize(("saved", "position"), [
    ("30", ("40.00000000", "175.00000000")),  # saved as it was: the position is unchanged
    ("20", ("30.00000000", "166.66666667")),  # 10 sold meanwhile: 20 at 200 and the other 10 at 100
])
def test_a_holding_summed_away_by_the_merge_and_saved_again_replaces_its_own_share_only(
    db, saved, position
):
    """Django's save() of a model loaded before the merge (1001: 30 at 200 on asset 12, summed
    into P1's position): its UPDATE finds no row, so it inserts the row again with its id."""
    add_holding(db, P1, 12, saved, "200", holding_id=1001)
    assert live_position(db, P1, 11) == [(1001, *map(Decimal, position))]


def test_a_holding_moved_back_to_a_removed_asset_by_a_stale_save_stays_on_the_survivor(db):
    # 1005 (P3) was re-pointed from 12 to 11; a model loaded before the merge saves asset 12.
    db.execute("UPDATE portfolios_holding SET asset_id = 12, updated_at = now() WHERE id = 1005")
    assert one(db, "SELECT asset_id FROM portfolios_holding WHERE id = 1005") == (11,)
    assert [r[0] for r in live_position(db, P3, 11)] == [1005]


# -- one row per key: watchlist, prices, news links -------------------------------------------


def test_a_live_watch_naming_a_removed_asset_replaces_the_users_entry_on_the_survivor(db):
    before = db.rows("SELECT id FROM investments_watchlist WHERE user_id = %s AND asset_id = 11",
                     [USER3])
    with db.connect() as conn:
        new = conn.execute(
            "INSERT INTO investments_watchlist (user_id, asset_id, notes, is_deleted, created_at, "
            "updated_at) VALUES (%s, 12, 'again', false, now(), now()) RETURNING id", [USER3]
        ).fetchone()[0]
    assert db.rows("SELECT id, notes FROM investments_watchlist WHERE user_id = %s AND asset_id = 11",
                   [USER3]) == [(new, "again")]
    assert [archived(db, "investments_watchlist", r[0])[-1] for r in before] == [("removed", 11)]


def test_a_soft_deleted_watch_naming_a_removed_asset_leaves_the_users_live_entry_as_it_is(db):
    """Only a live entry replaces: a deleted one (a stale model saved with is_deleted) moves to
    the survivor beside the user's live entry, which stays."""
    live = db.rows("SELECT id, notes FROM investments_watchlist WHERE user_id = %s AND asset_id = 11 "
                   "AND NOT is_deleted", [USER3])
    assert live
    with db.connect() as conn:
        new = conn.execute(
            "INSERT INTO investments_watchlist (user_id, asset_id, notes, is_deleted, created_at, "
            "updated_at) VALUES (%s, 12, 'gone', true, now(), now()) RETURNING id", [USER3]
        ).fetchone()[0]
    assert db.rows("SELECT id, notes FROM investments_watchlist WHERE user_id = %s AND asset_id = 11 "
                   "AND NOT is_deleted", [USER3]) == live
    assert one(db, "SELECT asset_id, is_deleted FROM investments_watchlist WHERE id = %s", [new]) == (
        11, True)


def test_a_price_naming_a_removed_asset_replaces_the_survivors_price_at_that_time(db):
    with db.connect() as conn:
        new = conn.execute(
            "INSERT INTO assets_assetpriceshistoric (asset_id, timestamp, open, high, low, close, "
            "volume) VALUES (12, '2024-01-01T00:00:00Z', 7, 7, 7, 7, 7) RETURNING id").fetchone()[0]
    assert db.rows("SELECT id, close FROM assets_assetpriceshistoric WHERE asset_id = 11 "
                   "AND timestamp = '2024-01-01T00:00:00Z'") == [(new, Decimal("7.000000"))]


def test_a_news_link_naming_a_removed_asset_leaves_one_link_to_the_survivor(db):
    with db.connect() as conn:  # as `article.assets.add(12)` sends it
        conn.execute("INSERT INTO investments_newsarticle_assets (newsarticle_id, asset_id) "
                     "VALUES (1, 12) ON CONFLICT DO NOTHING")
    assert db.rows("SELECT asset_id FROM investments_newsarticle_assets WHERE newsarticle_id = 1") == [
        (11,)]


# -- re-pointed only: alerts and benchmarks -------------------------------------------------------


def test_an_alert_and_a_benchmark_naming_a_removed_asset_point_at_the_survivor(db):
    with db.connect() as conn:
        alert = conn.execute(
            "INSERT INTO investments_alert (user_id, asset_id, condition, threshold, is_active, "
            "created_at) VALUES (%s, 16, 'above', 1, true, now()) RETURNING id", [USER1]).fetchone()[0]
        benchmark = conn.execute(
            "INSERT INTO portfolios_benchmark (name, asset_id, created_at, updated_at) "
            "VALUES ('b', 10, now(), now()) RETURNING id").fetchone()[0]
    assert one(db, "SELECT asset_id FROM investments_alert WHERE id = %s", [alert]) == (15,)
    assert one(db, "SELECT asset_id FROM portfolios_benchmark WHERE id = %s", [benchmark]) == (11,)
    assert archived(db, "investments_alert", alert) == [("redirected", 16)]


def test_an_id_that_was_never_an_asset_is_still_refused_by_the_foreign_key(db):
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        add_holding(db, P1, 999, "1", "1")


# -- the asset row itself ------------------------------------------------------------------------


def test_an_asset_merged_away_and_saved_again_is_merged_away_again_at_once(db):
    """Django's save() of an Asset model loaded before its merge inserts the row again."""
    with db.connect() as conn:
        saved = conn.execute(
            "INSERT INTO assets_asset (id, ticker, exchange_id, currency_id, name, is_deleted, "
            "created_at, updated_at) VALUES (12, 'ALPHA', 1, 1, 'Alpha', false, now(), now()) "
            "RETURNING id").fetchone()[0]
    assert saved == 12
    assert db.rows("SELECT id FROM assets_asset WHERE ticker = 'ALPHA' AND exchange_id = 1") == [(11,)]
    assert archived(db, "assets_asset", 12)[-1][0] == "redirected"


def test_the_new_release_finds_an_asset_by_an_id_the_merge_removed(db):
    result = db.manage("shell", "-v", "0", "-c", "from assets.models import Asset; "
                       "print(Asset.all_objects.resolve(12).pk, Asset.all_objects.resolve(20).pk)")
    assert result.stdout.split() == ["11", "20"]
    missing = db.manage("shell", "-v", "0", "-c",
                        "from assets.models import Asset; Asset.all_objects.resolve(999)", check=False)
    assert "DoesNotExist" in missing.stderr


# -- racing the merge ----------------------------------------------------------------------------


def test_a_write_racing_the_merge_of_its_asset_waits_for_it_and_lands_on_the_survivor(listed):  # noqa: F811
    """The merge of ALPHA holds its members locked until it commits; an insert naming 12 in the
    meantime waits for it (the redirect locks the asset as the foreign key check would), then
    finds 12 gone and its alias there: no foreign key violation."""
    db = listed.copy("redirect_race")
    try:
        result: dict = {}
        with db.connect() as merge, merge.transaction(), merge.cursor() as cursor:
            get_job("ticker_dedup").process_batch(cursor, 0, 1)  # group 1: ALPHA -> 11

            def write() -> None:
                try:
                    result["asset"] = one(db, "SELECT asset_id FROM portfolios_holding WHERE id = %s",
                                          [add_holding(db, P1, 12, "1", "1")])[0]
                except psycopg.Error as exc:
                    result["error"] = exc

            writer = threading.Thread(target=write)
            writer.start()
            writer.join(1.0)
            assert writer.is_alive(), "the write did not wait for the merge"
        writer.join(10)
        assert result == {"asset": 11}
    finally:
        db.drop()
