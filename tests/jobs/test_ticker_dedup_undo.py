"""`ticker_dedup_undo` (assets/jobs/ticker_dedup_undo.py) and `backfill undo ticker_dedup`, rule
by rule, on the data set of `test_ticker_dedup` after the merge (ALPHA's 10 and 12 merged into
11, BETA's 14 into 13, GAMMA's 16 into 15): every rule of the merge put back, a row changed
since the merge reported and never overwritten, writes since the merge left where they are.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from tests.jobs.conftest import JobDatabase
from tests.jobs.test_ticker_dedup import (  # noqa: F401 - the module's fixtures
    DATA_TABLES,
    P1,
    P2,
    USER1,
    data,
    holdings,
    listed,
    merged,
)

UNDO = "ticker_dedup_undo"


@pytest.fixture
def db(merged) -> JobDatabase:  # noqa: F811
    copy = merged.copy("undo")
    yield copy
    copy.drop()


def undo(db: JobDatabase, *args: str, check: bool = True):
    return db.manage("backfill", "undo", "ticker_dedup", "--inline", *args, check=check)


def groups(db: JobDatabase) -> dict[str, tuple]:
    """ticker: (survivor, merged, undo requested, undone)."""
    return {t: tuple(rest) for t, *rest in db.rows(
        "SELECT ticker, survivor_id, merged_at IS NOT NULL, undo_requested_at IS NOT NULL, "
        "undone_at IS NOT NULL FROM assets_duplicatetickergroup")}


def report(db: JobDatabase, ticker: str) -> dict:
    return db.scalar("SELECT undo_report FROM assets_duplicatetickergroup WHERE ticker = %s",
                     [ticker])


def without(rows: dict[str, dict[int, dict]], columns: dict[str, tuple[str, ...]]) -> dict:
    """The data less some columns of some tables."""
    return {table: {i: {k: v for k, v in r.items() if k not in columns.get(table, ())}
                    for i, r in by_id.items()} for table, by_id in rows.items()}


LEGACY_TEXT = {"assets_asset": ("sector", "industry")}  # dropped by 0013


# -- all of it, and what the merge's each rule gets back ------------------------------------------


def test_undoing_every_group_gives_back_every_row_exactly_as_it_was_before_the_merge(listed, db):  # noqa: F811
    out = undo(db).stdout
    assert data(db) == data(listed)  # assets with their ids, positions split, links and prices
    assert db.rows("SELECT * FROM assets_assetalias") == []
    assert groups(db) == {t: (None, False, False, True) for t in ("ALPHA", "BETA", "GAMMA")}
    assert "3 to put back by ticker_dedup_undo" in out


def test_the_undo_runs_through_the_engine_one_group_per_batch_and_reports_what_it_did(db):
    undo(db)
    run = db.latest_run(UNDO)
    assert run["status"] == "finished", run
    assert db.batches(UNDO) == [(0, 1, 1), (1, 2, 1), (2, 3, 1)]
    assert run["report"] == {
        # P1, P2, P4 of ALPHA and P1, P2 of GAMMA summed; P3 of ALPHA and P1 of BETA moved alone
        "groups_undone": 3, "assets_restored": 4, "positions_split": 7,
        # those 7 keepers, a soft-deleted holding, 3 watches, 2 prices, 2 links, 3 alerts, 1 benchmark
        "rows_moved_back": 7 + 1 + 3 + 2 + 2 + 3 + 1,
        # 5 summed holdings, 4 watches, 2 prices, 2 links
        "rows_inserted_again": 5 + 4 + 2 + 2,
    }


def test_a_summed_position_is_split_back_into_its_holdings_with_their_own_quantities(listed, db):  # noqa: F811
    undo(db)
    assert holdings(db)[1002] == holdings(listed)[1002]  # 10 at 100 again, not 40 at 175
    assert holdings(db)[1001] == holdings(listed)[1001]  # 30 at 200, on asset 12, with its id
    assert db.rows("SELECT updated_at FROM portfolios_holding WHERE id = 1002") == listed.rows(
        "SELECT updated_at FROM portfolios_holding WHERE id = 1002")  # the merge's stamp too


def test_the_archive_keeps_the_merge_and_its_rows_are_consumed_by_the_undo(merged, db):  # noqa: F811
    archived = merged.scalar("SELECT count(*) FROM assets_assetmergearchive")
    undo(db)
    assert db.rows("SELECT count(*), count(undone_at) FROM assets_assetmergearchive") == [
        (archived, archived)]


# -- choosing groups, refusing, twice ------------------------------------------------------------


def test_a_group_named_by_ticker_and_mic_is_undone_alone(listed, db):  # noqa: F811
    undo(db, "--group", "ALPHA:XNYS")
    assert groups(db)["ALPHA"] == (None, False, False, True)
    assert groups(db)["GAMMA"][1:] == (True, False, False)
    after, before = data(db), data(listed)
    assert {10, 11, 12} <= set(after["assets_asset"]) and 16 not in after["assets_asset"]
    assert {i: r for i, r in after["portfolios_holding"].items() if r["portfolio_id"] == str(P2)
            and r["asset_id"] in (10, 11, 12)} == {
        i: r for i, r in before["portfolios_holding"].items() if r["portfolio_id"] == str(P2)
        and r["asset_id"] in (10, 11, 12)}
    assert db.rows("SELECT asset_id FROM assets_assetalias ORDER BY 1") == [(14,), (16,)]


def test_an_unknown_group_is_bad_input_and_nothing_is_marked(db):
    result = undo(db, "--group", "NOPE:XNYS", check=False)
    assert result.returncode == 2, result
    assert "no duplicate group 'NOPE:XNYS'" in result.stderr
    assert all(not g[2] for g in groups(db).values())
    assert undo(db, "--group", "ALPHA", check=False).returncode == 2  # no MIC


def test_a_group_undone_twice_changes_nothing_the_second_time(db):
    undo(db)
    first = data(db), db.rows("SELECT * FROM assets_assetmergearchive ORDER BY id")
    again = db.batch(UNDO, 0, 3)
    assert (again.rows, again.counts) == (0, {})
    assert "nothing to undo" in undo(db).stdout
    assert "nothing to undo" in undo(db, "--group", "GAMMA:XNAS").stdout
    assert (data(db), db.rows("SELECT * FROM assets_assetmergearchive ORDER BY id")) == first


def test_undo_is_refused_while_the_merge_has_a_run_under_way(listed):  # noqa: F811
    # listed: 0012 enqueued ticker_dedup, and with no broker its run is still pending.
    copy = listed.copy("undo_racing")
    try:
        result = copy.manage("backfill", "undo", "ticker_dedup", "--inline", check=False)
        assert result.returncode == 3, result
        assert "ticker_dedup has run #" in result.stderr and "must not race" in result.stderr
    finally:
        copy.drop()


def test_a_job_without_an_undo_says_so(db):
    result = db.manage("backfill", "undo", "alerts_uuid", "--inline", check=False)
    assert result.returncode == 2, result
    assert "alerts_uuid has no undo" in result.stderr


# -- changed since the merge: reported, never overwritten ------------------------------------------


def test_a_row_changed_since_the_merge_is_reported_and_left_as_it_is(listed, db):  # noqa: F811
    db.execute("UPDATE portfolios_holding SET quantity = 45 WHERE id = 1002")  # bought 5 more
    db.execute("UPDATE investments_alert SET asset_id = 20 WHERE id = 5001")  # moved by a user
    db.execute("DELETE FROM portfolios_benchmark WHERE id = 6001")
    out = undo(db).stdout

    assert holdings(db)[1002] == (P1, 11, Decimal("45"), Decimal("175"), False)
    assert 1001 not in holdings(db)  # its 30 stay summed into 1002: nothing counted twice
    assert db.scalar("SELECT asset_id FROM investments_alert WHERE id = 5001") == 20
    kept = {(t, i): why for t, i, why in report(db, "ALPHA")["kept"]}
    assert set(kept) == {("portfolios_holding", 1002), ("investments_alert", 5001),
                         ("portfolios_benchmark", 6001)}
    assert "holds 45 at 175 since the merge, which left 40 at 175" in kept["portfolios_holding", 1002]
    assert "ALPHA:XNYS: portfolios_holding 1002 left as it is: holds 45" in out
    status = db.manage("backfill", "status", UNDO).stdout  # and later, for whoever looks
    assert "ALPHA:XNYS: investments_alert 5001 left as it is: names asset 20" in " ".join(status.split())
    # Everything else of the group is back.
    before, after = data(listed), data(db)
    for table in DATA_TABLES:
        changed = {i for t, i in kept if t == table} | ({1001} if table == "portfolios_holding" else set())
        assert {i: r for i, r in after[table].items() if i not in changed and i != 1002} == {
            i: r for i, r in before[table].items() if i not in changed and i != 1002}, table


def test_a_removed_row_written_again_since_the_merge_is_reported_and_its_write_stays(db):
    # USER1's soft-deleted watch of 11 (2001) was merged away; a stale save inserts it again,
    # naming 12, and the redirect puts it on 11.
    db.execute("INSERT INTO investments_watchlist (id, user_id, asset_id, is_deleted, notes, "
               "created_at, updated_at) VALUES (2001, %s, 12, true, 'again', now(), now())", [USER1])
    undo(db)
    assert db.rows("SELECT asset_id, notes FROM investments_watchlist WHERE id = 2001") == [
        (11, "again")]
    alpha = report(db, "ALPHA")
    assert ["investments_watchlist", 2001, "written again since the merge (its id is taken)"] in (
        alpha["kept"])
    assert ["investments_watchlist", 2001, "redirected", 12] in alpha["written_since"]


def test_a_write_since_the_merge_stays_on_the_survivor_and_the_position_it_replaced_stays_summed(db):
    # A new holding of P1 naming 12: the redirect folds P1's position (1002: 40 at 175) into it.
    with db.connect() as conn:
        new = conn.execute(
            "INSERT INTO portfolios_holding (portfolio_id, asset_id, quantity, average_cost, "
            "is_deleted, created_at, updated_at) VALUES (%s, 12, 10, 75, false, now(), now()) "
            "RETURNING id", [P1]).fetchone()[0]
    out = undo(db).stdout
    p1 = {i: h for i, h in holdings(db).items() if h[0] == P1 and h[1] in (10, 11, 12) and not h[4]}
    assert p1 == {new: (P1, 11, Decimal("50"), Decimal("155"), False)}  # 40 + 10, once
    alpha = report(db, "ALPHA")
    assert ["portfolios_holding", new, "redirected", 12] in alpha["written_since"]
    assert ["portfolios_holding", 1002, "removed", 11] in alpha["written_since"]
    assert [t for t, i, _ in alpha["kept"] if i == 1002] == ["portfolios_holding"]
    assert f"portfolios_holding {new} was written since the merge naming asset 12" in out


def test_a_merged_away_asset_saved_again_since_the_merge_is_restored_as_the_merge_found_it(listed, db):  # noqa: F811
    # A model of 12 loaded before the merge and saved after it: inserted, merged away at once.
    db.execute("INSERT INTO assets_asset (id, ticker, exchange_id, is_deleted, name, currency_id, "
               "created_at, updated_at) VALUES (12, 'ALPHA', 1, false, 'renamed', 1, now(), now())")
    undo(db)
    assert data(db)["assets_asset"] == data(listed)["assets_asset"]
    assert ["assets_asset", 12, "redirected", None] in report(db, "ALPHA")["written_since"]


# -- afterwards --------------------------------------------------------------------------------------


def test_a_restored_asset_is_live_again_and_writes_naming_it_stay_on_it(db):
    undo(db)
    with db.connect() as conn:
        conn.execute("INSERT INTO investments_alert (asset_id, user_id, condition, threshold, "
                     "is_active, created_at) VALUES (12, %s, 'above', 1, true, now())", [USER1])
    assert db.scalar("SELECT count(*) FROM investments_alert WHERE asset_id = 12") == 2  # 5001 too
    assert db.scalar("SELECT count(*) FROM assets_assetmergearchive WHERE undone_at IS NULL") == 0


def test_new_duplicates_are_still_refused_after_an_undo(db):
    undo(db)
    with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO assets_asset (ticker, exchange_id, is_deleted, name, currency_id, "
                     "created_at, updated_at) VALUES ('ALPHA', 1, false, 'again', 1, now(), now())")


def test_after_an_undo_the_merge_is_not_finished_any_more_and_runs_again_through_its_gate(merged, db):  # noqa: F811
    undo(db)
    assert db.remaining("ticker_dedup") == 3
    db.migrate("assets", "0014_asset_ticker_exchange_unique")  # the gate merges them again inline
    assert db.remaining("ticker_dedup") == 0
    ignore = {**LEGACY_TEXT, "portfolios_holding": ("updated_at",)}  # the second merge's time
    assert without(data(db), ignore) == without(data(merged), ignore)


def test_undo_is_refused_while_unique_stands_and_works_once_migrate_assets_0013_takes_it_back(
    listed, db,  # noqa: F811
):
    db.migrate("assets", "0015_drop_duplicate_guard")
    result = undo(db, check=False)
    assert result.returncode == 3, result
    assert "UNIQUE (ticker, exchange) of assets 0014 stands" in result.stderr
    assert "python manage.py migrate assets 0013" in result.stderr
    assert all(not g[2] for g in groups(db).values())  # nothing marked

    db.migrate("assets", "0013")
    undo(db)
    assert without(data(db), LEGACY_TEXT) == without(data(listed), LEGACY_TEXT)
    with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):  # the guard is back
        conn.execute(sql.SQL("INSERT INTO assets_asset (ticker, exchange_id, is_deleted, name, "
                             "currency_id, created_at, updated_at) VALUES ('ALPHA', 1, false, "
                             "'again', 1, now(), now())"))
