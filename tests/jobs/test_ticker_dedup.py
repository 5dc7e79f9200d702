"""`ticker_dedup` (assets/jobs/ticker_dedup.py), rule by rule, on the schema of assets 0012: the
duplicates were written before the guard of 0010, and 0012 listed their groups.

One data set holds a case for every rule; `merged` is it after the engine ran the job, `listed`
before. Ids are explicit so that "the lowest id" reads off the data:

    ALPHA on XNYS: 10 (soft-deleted), 11, 12       -> 11, the lowest live member
    BETA on XNYS:  13 (soft-deleted), 14 (same)    -> 13, stays soft-deleted
    GAMMA on XNAS: 15, 16                          -> 15
    OTHER on XNYS: 20; ALPHA on XNAS: 30           -> no duplicates, untouched
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from assets.jobs.ticker_dedup import REFERENCING_TABLES
from tests.jobs.conftest import JobDatabase

JOB = "ticker_dedup"
SURVIVOR = {"ALPHA": 11, "BETA": 13, "GAMMA": 15}
REMOVED = {10, 12, 14, 16}
P1, P2, P3, P4, P5 = (uuid.UUID(int=n) for n in range(1, 6))
USER1, USER2, USER3 = 1, 2, 3

# (id, ticker, exchange, is_deleted)
ASSETS = [(10, "ALPHA", 1, True), (11, "ALPHA", 1, False), (12, "ALPHA", 1, False),
          (13, "BETA", 1, True), (14, "BETA", 1, True), (15, "GAMMA", 2, False),
          (16, "GAMMA", 2, False), (20, "OTHER", 1, False), (30, "ALPHA", 2, False)]
# (id, portfolio, asset, quantity, average cost, is_deleted)
HOLDINGS = [
    (1001, P1, 12, "30", "200", False), (1002, P1, 11, "10", "100", False),  # survivor's kept
    (1003, P2, 12, "5", "10", False), (1004, P2, 10, "15", "20", False),  # none: lowest id kept
    (1005, P3, 12, "7", "3", False),  # alone: moves as it is
    (1006, P1, 12, "99", "1", True),  # soft-deleted: moves as it is, not summed
    (1007, P4, 11, "0", "5", False), (1008, P4, 12, "0", "9", False),  # zero: keeper's cost
    (1009, P1, 14, "1", "1", False),  # onto the soft-deleted survivor of BETA
    (1010, P1, 20, "3", "3", False),  # not a duplicate
    (1011, P5, 11, "2", "50", False),  # the survivor's own, nothing to merge into it
    (1012, P1, 15, "4", "10", False), (1013, P1, 16, "6", "20", False),
    (1014, P2, 16, "1", "1", False), (1015, P2, 16, "2", "0.5", False),  # cost 2/3: rounded
]
# (id, user, asset, is_deleted)
WATCHLIST = [
    (2001, USER1, 11, True), (2002, USER1, 12, False),  # a live entry before the survivor's
    (2003, USER2, 12, False), (2004, USER2, 11, False),  # the survivor's before a lower id
    (2005, USER3, 10, False), (2006, USER3, 12, False),  # else the lowest id
    (2007, USER1, 14, True),  # alone
    (2008, USER2, 13, True), (2009, USER2, 14, True),  # both deleted: the survivor's
]
# (id, asset, day of January 2024)
PRICES = [(3001, 12, 1), (3002, 11, 1), (3003, 10, 2), (3004, 12, 2), (3005, 12, 3), (3006, 11, 4)]
# (id, article, asset)
NEWS_LINKS = [(4001, 1, 12), (4002, 1, 11), (4003, 2, 10), (4004, 2, 12), (4005, 3, 16)]
# (id, asset)
ALERTS = [(5001, 12), (5002, 10), (5003, 11), (5004, 16)]
BENCHMARKS = [(6001, 12), (6002, 20)]
# Every table the merge changes, by the name the archive records.
DATA_TABLES = ["assets_asset", *REFERENCING_TABLES]


def load(db: JobDatabase) -> None:
    """The data set, written by the legacy schema (before 0010 refused duplicates)."""
    now = "now"
    db.insert("auth_user", "id, password, is_superuser, username, first_name, last_name, email, "
              "is_staff, is_active, date_joined",
              [(u, "!", False, f"user{u}", "", "", "", False, True, now) for u in (1, 2, 3)])
    db.insert("assets_country", "id, created_at, updated_at, iso_code, name", [(1, now, now, "US", "US")])
    db.insert("assets_currency", "id, created_at, updated_at, code, name", [(1, now, now, "USD", "USD")])
    db.insert("assets_exchange", "id, created_at, updated_at, mic, name, country_id, currency_id",
              [(1, now, now, "XNYS", "NYSE", 1, 1), (2, now, now, "XNAS", "Nasdaq", 1, 1)])
    db.insert("assets_asset", "id, ticker, exchange_id, is_deleted, name, currency_id, created_at, "
              "updated_at", [(*a, a[1].title(), 1, now, now) for a in ASSETS])
    db.insert("portfolios_portfolio", "id, owner_id, name, base_currency_id, created_at, updated_at",
              [(p, USER1, f"p{p.int}", 1, now, now) for p in (P1, P2, P3, P4, P5)])
    db.insert("portfolios_holding", "id, portfolio_id, asset_id, quantity, average_cost, is_deleted, "
              "created_at, updated_at", [(*h, now, now) for h in HOLDINGS])
    db.insert("investments_watchlist", "id, user_id, asset_id, is_deleted, notes, created_at, "
              "updated_at", [(*w, "", now, now) for w in WATCHLIST])
    db.insert("assets_assetpriceshistoric", "id, asset_id, timestamp, open, high, low, close, volume",
              [(i, a, f"2024-01-0{day}T00:00:00Z", 1, 1, 1, 1, 0) for i, a, day in PRICES])
    db.insert("investments_newsarticle", "id, title, url, source, published_at, created_at, updated_at",
              [(n, f"n{n}", "https://example.com", "wire", now, now, now) for n in (1, 2, 3)])
    db.insert("investments_newsarticle_assets", "id, newsarticle_id, asset_id", NEWS_LINKS)
    db.insert("investments_alert", "id, asset_id, user_id, condition, threshold, is_active, created_at",
              [(i, a, USER1, "above", 1, True, now) for i, a in ALERTS])
    db.insert("investments_alerttrigger", "id, alert_id, triggered_at, price, notified",
              [(5101, 5001, now, 1, False)])
    db.insert("portfolios_benchmark", "id, asset_id, name, created_at, updated_at",
              [(i, a, f"b{i}", now, now) for i, a in BENCHMARKS])


@pytest.fixture(scope="module")
def listed(legacy_template) -> JobDatabase:
    """The duplicates written at assets 0009, then 0010-0012 applied: guarded, listed, enqueued."""
    db = legacy_template.copy("dedup_tpl")
    db.migrate("assets", "0009_asset_ticker_exchange_lookup_index")
    load(db)
    db.migrate("assets", "0012_enqueue_ticker_dedup")
    yield db
    db.drop()


@pytest.fixture(scope="module")
def merged(listed) -> JobDatabase:
    """The data set after the engine ran the job (inline, as `backfill run` does)."""
    db = listed.copy("dedup_merged")
    db.run(JOB)
    yield db
    db.drop()


@pytest.fixture
def db(listed) -> JobDatabase:
    copy = listed.copy("dedup")
    yield copy
    copy.drop()


def rows_by_id(db: JobDatabase, table: str) -> dict[int, dict]:
    return dict(db.rows(sql.SQL("SELECT t.id, to_jsonb(t) FROM {} AS t").format(sql.Identifier(table))))


def data(db: JobDatabase) -> dict[str, dict[int, dict]]:
    return {table: rows_by_id(db, table) for table in DATA_TABLES}


def holdings(db: JobDatabase) -> dict[int, tuple]:
    return {h[0]: h[1:] for h in db.rows(
        "SELECT id, portfolio_id, asset_id, quantity, average_cost, is_deleted FROM portfolios_holding")}


def asset_of(db: JobDatabase, table: str) -> dict[int, int]:
    return dict(db.rows(sql.SQL("SELECT id, asset_id FROM {}").format(sql.Identifier(table))))


# -- the survivor and the members ---------------------------------------------------------------


def test_a_group_merges_into_its_lowest_id_member_that_is_not_soft_deleted(merged):
    groups = dict(merged.rows("SELECT ticker, survivor_id FROM assets_duplicatetickergroup"))
    assert groups == SURVIVOR  # ALPHA: 11, not the soft-deleted 10
    assert merged.rows("SELECT is_deleted FROM assets_asset WHERE id IN (11, 15)") == [(False,)] * 2


def test_a_group_whose_members_are_all_soft_deleted_merges_into_the_lowest_id_which_stays_deleted(
    merged,
):
    assert merged.rows("SELECT id, is_deleted FROM assets_asset WHERE ticker = 'BETA'") == [(13, True)]


def test_every_other_member_is_removed_and_every_other_asset_is_left_as_it_was(listed, merged):
    before, after = rows_by_id(listed, "assets_asset"), rows_by_id(merged, "assets_asset")
    assert set(before) - set(after) == REMOVED
    assert {i: before[i] for i in after} == after


def test_nothing_refers_to_a_removed_member_any_more(merged):
    for table in REFERENCING_TABLES:
        assert set(asset_of(merged, table).values()).isdisjoint(REMOVED), table


def test_the_job_handles_every_table_with_a_foreign_key_to_assets(listed):
    referencing = {r[0] for r in listed.rows(
        "SELECT conrelid::regclass::text FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = 'assets_asset'::regclass")}
    assert referencing == set(REFERENCING_TABLES)


# -- holdings -------------------------------------------------------------------------------------


def test_a_portfolio_keeps_one_live_position_on_the_survivors_holding_quantities_summed_cost_weighted(
    merged,
):
    after = holdings(merged)
    assert after[1002] == (P1, 11, Decimal("40"), Decimal("175"), False)  # (30*200 + 10*100) / 40
    assert 1001 not in after


def test_without_a_holding_of_the_survivor_the_lowest_id_holding_is_kept_and_moved(merged):
    after = holdings(merged)
    assert after[1003] == (P2, 11, Decimal("20"), Decimal("17.5"), False)  # (5*10 + 15*20) / 20
    assert 1004 not in after


def test_a_merged_cost_is_rounded_to_eight_places(merged):
    assert holdings(merged)[1014] == (P2, 15, Decimal("3"), Decimal("0.66666667"), False)


def test_a_lone_holding_of_a_removed_member_moves_to_the_survivor_unchanged(merged):
    assert holdings(merged)[1005] == (P3, 11, Decimal("7"), Decimal("3"), False)
    assert holdings(merged)[1009] == (P1, 13, Decimal("1"), Decimal("1"), False)


def test_positions_that_sum_to_zero_keep_the_keepers_cost(merged):
    after = holdings(merged)
    assert after[1007] == (P4, 11, Decimal("0"), Decimal("5"), False)
    assert 1008 not in after


def test_soft_deleted_holdings_move_as_they_are_and_are_not_summed(merged):
    assert holdings(merged)[1006] == (P1, 11, Decimal("99"), Decimal("1"), True)


def test_each_portfolio_holds_as_much_of_each_instrument_as_before(listed, merged):
    members = defaultdict(list)
    for asset, ticker, exchange, _ in ASSETS:
        members[(ticker, exchange)].append(asset)
    instrument = {asset: SURVIVOR[ticker] if len(members[(ticker, exchange)]) > 1 else asset
                  for asset, ticker, exchange, _ in ASSETS}

    def live(db):
        total = defaultdict(Decimal)
        for portfolio, asset, quantity, _, deleted in holdings(db).values():
            if not deleted:
                total[(portfolio, instrument[asset])] += quantity
        return total

    assert live(merged) == live(listed)
    live_positions = [(p, a) for p, a, _, _, deleted in holdings(merged).values() if not deleted]
    assert len(live_positions) == len(set(live_positions))  # one live position per instrument


# -- watchlists, prices, news, alerts, benchmarks ----------------------------------------------------


@pytest.mark.parametrize(("user", "kept", "why"), [
    (USER1, 2002, "a live entry before the survivor's soft-deleted one"),
    (USER2, 2004, "the survivor's entry before one with a lower id"),
    (USER3, 2005, "else the lowest id"),
])
def test_a_user_keeps_one_watchlist_entry_for_the_instrument(merged, user, kept, why):
    entries = merged.rows("SELECT id, asset_id FROM investments_watchlist "
                          "WHERE user_id = %s AND asset_id = 11", [user])
    assert entries == [(kept, 11)], why


def test_soft_deleted_watchlist_entries_collapse_to_the_survivors(merged):
    assert merged.rows("SELECT id, user_id, is_deleted FROM investments_watchlist "
                       "WHERE asset_id = 13 ORDER BY id") == [(2007, USER1, True), (2008, USER2, True)]


def test_one_price_per_timestamp_stays_the_survivors_else_the_lowest_id(merged):
    prices = merged.rows("SELECT id, asset_id, extract(day FROM timestamp AT TIME ZONE 'UTC')::int "
                         "FROM assets_assetpriceshistoric ORDER BY 3")
    assert prices == [(3002, 11, 1), (3003, 11, 2), (3005, 11, 3), (3006, 11, 4)]


def test_one_news_link_per_article_stays_the_survivors_else_the_lowest_id(merged):
    links = merged.rows("SELECT id, newsarticle_id, asset_id FROM investments_newsarticle_assets "
                        "ORDER BY newsarticle_id")
    assert links == [(4002, 1, 11), (4003, 2, 11), (4005, 3, 15)]


def test_alerts_and_benchmarks_are_repointed_and_nothing_else_about_them_changes(listed, merged):
    assert asset_of(merged, "investments_alert") == {5001: 11, 5002: 11, 5003: 11, 5004: 15}
    assert asset_of(merged, "portfolios_benchmark") == {6001: 11, 6002: 20}
    for table in ("investments_alert", "portfolios_benchmark"):
        before, after = rows_by_id(listed, table), rows_by_id(merged, table)
        assert {i: {**row, "asset_id": None} for i, row in after.items()} == {
            i: {**row, "asset_id": None} for i, row in before.items()}
    assert merged.rows("SELECT id, alert_id FROM investments_alerttrigger") == [(5101, 5001)]


# -- the archive -----------------------------------------------------------------------------------


def test_every_row_removed_or_changed_has_its_before_image_archived_and_no_other_row(listed, merged):
    before, after = data(listed), data(merged)
    expected = {}
    for table in DATA_TABLES:
        for row_id, row in before[table].items():
            if row_id not in after[table]:
                expected[(table, str(row_id))] = ("removed", row)
            elif after[table][row_id] != row:
                expected[(table, str(row_id))] = ("changed", row)
    assert {action for action, _ in expected.values()} == {"removed", "changed"}
    archived = merged.rows("SELECT table_name, row_key, action, before FROM assets_assetmergearchive")
    assert len(archived) == len(expected)  # each such row once
    assert {(t, k): (action, image) for t, k, action, image in archived} == expected


def test_the_archive_names_the_group_and_survivor_of_each_row(merged):
    groups = dict(merged.rows("SELECT id, survivor_id FROM assets_duplicatetickergroup"))
    for group, survivor, table, row_key in merged.rows(
            "SELECT group_id, survivor_id, table_name, row_key FROM assets_assetmergearchive"):
        assert groups[group] == survivor, (table, row_key)


def test_a_merge_can_be_undone_from_its_archive(listed, merged):
    undone = merged.copy("dedup_undone")
    try:
        with undone.connect() as conn, conn.transaction():
            # Undoing re-creates the duplicates, which the guard of 0010 exists to refuse, and
            # makes their ids live again: they stop being aliases of the survivors (else the
            # redirect of 0012 would move them, and the rows naming them, right back).
            conn.execute("ALTER TABLE assets_asset DISABLE TRIGGER assets_asset_refuse_duplicate")
            conn.execute("DELETE FROM assets_assetalias")
            for table in DATA_TABLES:
                t = sql.Identifier(table)
                conn.execute(sql.SQL(
                    "DELETE FROM {t} WHERE id IN (SELECT row_key::bigint FROM assets_assetmergearchive "
                    "WHERE table_name = %s AND action = 'changed')").format(t=t), [table])
                conn.execute(sql.SQL(
                    "INSERT INTO {t} SELECT (jsonb_populate_record(NULL::{t}, before)).* "
                    "FROM assets_assetmergearchive WHERE table_name = %s "
                    "AND action IN ('removed', 'changed')").format(t=t), [table])
        assert data(undone) == data(listed)
    finally:
        undone.drop()


# -- batches, idempotency, done ---------------------------------------------------------------------


def test_a_batch_merges_as_many_groups_as_its_size_allows_and_the_run_counts_them(merged):
    run = merged.latest_run(JOB)
    assert run["status"] == "finished", run
    # The first batch is one group (the job's first size); the next are sized from its time.
    batches = merged.batches(JOB)
    assert batches[0] == (0, 1, 1)
    assert [(start, end) for start, end, _ in batches] == list(
        zip([0] + [end for _, end, _ in batches[:-1]], [end for _, end, _ in batches], strict=True))
    assert batches[-1][1] == 3 and sum(rows for _, _, rows in batches) == 3
    assert run["report"]["groups_merged"] == 3
    assert run["report"]["assets_removed"] == len(REMOVED)


def test_a_batch_of_several_groups_merges_all_of_them_or_none(db):
    """A failure part-way through a batch (here: the last write of the last group, the alias of
    16) rolls every group of the batch back, before-images included; done again, it merges them."""
    before = data(db)
    db.execute("CREATE FUNCTION refuse_alias() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.asset_id = 16 THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$")
    db.execute("CREATE TRIGGER refuse_alias BEFORE INSERT ON assets_assetalias FOR EACH ROW "
               "EXECUTE FUNCTION refuse_alias()")
    with pytest.raises(psycopg.errors.RaiseException, match="refused"):
        db.batch(JOB, 0, 3)
    assert data(db) == before
    assert db.rows("SELECT count(*) FROM assets_assetmergearchive") == [(0,)]
    assert db.rows("SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NOT NULL") \
        == [(0,)]

    db.execute("DROP TRIGGER refuse_alias ON assets_assetalias")
    assert db.batch(JOB, 0, 3).counts["groups_merged"] == 3
    assert db.remaining(JOB) == 0


def test_a_batch_done_twice_changes_nothing_the_second_time(db):
    db.batch(JOB, 0, 3)
    first = data(db), db.rows("SELECT * FROM assets_assetmergearchive ORDER BY id")
    again = db.batch(JOB, 0, 3)
    assert again.rows == 0
    assert again.counts == {}
    assert (data(db), db.rows("SELECT * FROM assets_assetmergearchive ORDER BY id")) == first


def test_done_when_no_two_assets_share_a_ticker_and_exchange_soft_deleted_ones_included(db):
    assert db.remaining(JOB) == 3  # BETA, all soft-deleted, counts too
    db.batch(JOB, 0, 1)
    assert db.remaining(JOB) == 2
    db.batch(JOB, 1, 3)
    assert db.remaining(JOB) == 0


def test_a_merged_group_stays_merged_new_duplicates_are_refused(merged):
    with merged.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO assets_asset (ticker, exchange_id, is_deleted, name, currency_id, "
                     "created_at, updated_at) VALUES ('ALPHA', 1, false, 'again', 1, now(), now())")
    assert merged.remaining(JOB) == 0
