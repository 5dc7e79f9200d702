"""What must hold after the online migration, disturbed or not: the fixed schema, every row
accounted for, uniqueness, archives and references; the jobs' results as an independent oracle
computes them from the legacy data (`tests.oracle`); and the same results as an undisturbed run
of the same seed.

Written against the seeded database's own figures (`Before`), so the same checks serve any seed
and size. Rows the live load wrote are told apart by key: everything above the seeded maximum
of a table was inserted by the load (nothing else inserts during the migration).

Every table that refers to an asset or an alert is accounted for absolutely: each seeded row is
still there or its before-image was archived as removed by a merge, and the rows after are the
rows before, plus the load's acknowledged inserts (at most its ambiguous ones on top), less the
rows archived as removed. "Rows checked" counts only rows an assertion read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from psycopg import sql

from tests import oracle
from tests.scratch import Database

SOFT_DELETE_TABLES = (
    "assets_country", "assets_sector", "assets_industry", "assets_currency",
    "portfolios_benchmark", "investments_newsarticle", "investments_alert",
)
INDEXES = {
    "idx_portfolios_holding_portfolio_asset": "portfolios_holding",
    "idx_assets_priceshistoric_asset_timestamp": "assets_assetpriceshistoric",
    "idx_investments_watchlist_user_asset": "investments_watchlist",
}
LOAD_TABLES = {  # table -> the load's statement that inserts into it
    "investments_alert": "insert_alert",
    "investments_alerttrigger": "insert_trigger",
    "investments_watchlist": "insert_watch",
    "assets_asset": "insert_asset",
}
# Every table that refers to an asset or an alert, and the assets themselves.
ACCOUNTED_TABLES = (*LOAD_TABLES, "portfolios_holding", "assets_assetpriceshistoric",
                    "investments_newsarticle_assets", "portfolios_benchmark")
ORACLE_CHECK = "seeded rows equal to the oracle's"
# Keys of a before-image whose presence depends on which other migrations had run when the row
# was archived (alerts get a uuid from another job; the text columns are dropped by 0013).
VOLATILE_IMAGE_KEYS = ("uuid", "sector", "industry")


@dataclass
class Before:
    """The seeded database, read before the migration."""

    ids: dict[str, set[int]]
    groups: list[tuple]
    live_quantity: dict[tuple, Decimal]
    texts: set[tuple]
    legacy: oracle.Legacy

    @property
    def max_id(self) -> dict[str, int]:
        return {table: max(ids, default=0) for table, ids in self.ids.items()}

    @classmethod
    def read(cls, db: Database) -> Before:
        ids = {table: {r[0] for r in db.rows(sql.SQL("SELECT id FROM {}").format(
            sql.Identifier(table)))} for table in ACCOUNTED_TABLES}
        groups = db.rows("SELECT ticker, exchange_id, array_agg(id ORDER BY id) FROM assets_asset "
                         "GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2")
        member_to_group = {m: (t, e) for t, e, members in groups for m in members}
        live_quantity: dict[tuple, Decimal] = defaultdict(Decimal)
        for portfolio, asset, quantity in db.rows(
            "SELECT portfolio_id, asset_id, quantity FROM portfolios_holding WHERE NOT is_deleted"
        ):
            live_quantity[(portfolio, member_to_group.get(asset, asset))] += quantity
        texts = set(db.rows(
            "SELECT id, 'sector', sector FROM assets_asset WHERE btrim(coalesce(sector, '')) <> '' "
            "UNION ALL SELECT id, 'industry', industry FROM assets_asset "
            "WHERE btrim(coalesce(industry, '')) <> ''"))
        with db.connect() as conn, conn.cursor() as cursor:
            legacy = oracle.snapshot(cursor)
        return cls(ids, groups, dict(live_quantity), texts, legacy)

    @property
    def removed_assets(self) -> int:
        return sum(len(members) - 1 for _, _, members in self.groups)


@dataclass
class LoadFigures:
    """What the load was told (acknowledged) and what it cannot know (ambiguous), per table."""

    acknowledged: dict[str, int]
    ambiguous: dict[str, int]
    alert_ids: list[int]


@dataclass
class Checked:
    """Figures of one verification: rows looked at, per check."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int) -> None:
        self.rows[name] = self.rows.get(name, 0) + n

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def check_schema(db: Database, checked: Checked) -> None:
    """The five fixes, read from the catalog."""
    assert db.scalar("SELECT convalidated FROM pg_constraint WHERE contype = 'u' "
                     "AND conname = 'assets_asset_ticker_exchange_unique'") is True
    for index, table in INDEXES.items():
        assert db.scalar("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                         "WHERE c.relname = %s AND i.indrelid = %s::regclass", [index, table]) is True, index
    assert db.rows("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid") == []
    assert db.rows("SELECT conname FROM pg_constraint WHERE NOT convalidated") == []
    for table in SOFT_DELETE_TABLES:
        columns = {r[0] for r in db.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table])}
        assert {"is_deleted", "deleted_at"} <= columns, table
    assert db.rows(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary") == [("uuid", "uuid")]
    assert db.rows(
        "SELECT a.attname, confrelid::regclass::text, convalidated FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'f' AND c.conrelid = 'investments_alerttrigger'::regclass ORDER BY 1"
    ) == [("alert_id", "investments_alert", True), ("alert_uuid", "investments_alert", True)]
    columns = {r[0] for r in db.rows("SELECT column_name FROM information_schema.columns "
                                     "WHERE table_name = 'assets_asset'")}
    assert not {"sector", "industry"} & columns
    checked.add("catalog objects", len(INDEXES) + len(SOFT_DELETE_TABLES) + 4)


def check_data(db: Database, before: Before, load: LoadFigures, checked: Checked) -> None:
    """Nothing lost, nothing doubled: every seeded and every acknowledged row accounted for."""
    for table in ACCOUNTED_TABLES:
        after = {r[0] for r in db.rows(sql.SQL("SELECT id FROM {}").format(sql.Identifier(table)))}
        removed = {int(r[0]) for r in db.rows(
            "SELECT row_key FROM assets_assetmergearchive WHERE table_name = %s "
            "AND action = 'removed'", [table])}
        seeded = before.ids[table]
        lost = seeded - after - removed
        assert not lost, (f"{table}: {len(lost)} seeded row(s) neither there nor archived, "
                          f"e.g. {sorted(lost)[:5]}")
        assert not (seeded & after & removed), f"{table}: rows archived as removed are still there"
        added = after - seeded
        assert all(row > before.max_id[table] for row in added), f"{table}: a seeded id came back"
        op = LOAD_TABLES.get(table)
        low = load.acknowledged.get(op, 0) if op else 0
        high = low + (load.ambiguous.get(op, 0) if op else 0)
        assert len(after) - len(added) == len(seeded) - len(seeded & removed), table
        assert low <= len(added) <= high, (
            f"{table}: {len(added)} row(s) written during the deploy, acknowledged {low}..{high}")
        checked.add(f"{table} rows accounted", len(seeded) + len(added))
    present = {r[0] for r in db.rows("SELECT id FROM investments_alert WHERE id = ANY(%s)",
                                     [load.alert_ids])}
    assert present == set(load.alert_ids), "an acknowledged alert is missing"
    checked.add("acknowledged alerts present", len(load.alert_ids))

    # Uniqueness and the UUID key.
    alerts = db.scalar("SELECT count(*) FROM investments_alert")
    assert db.scalar("SELECT count(DISTINCT uuid) FROM investments_alert") == alerts
    assert db.scalar("SELECT count(*) FROM investments_alert WHERE uuid IS NULL") == 0
    assert db.scalar("SELECT count(*) FROM (SELECT 1 FROM assets_asset GROUP BY ticker, exchange_id "
                     "HAVING count(*) > 1) d") == 0
    checked.add("uniqueness (alerts, assets)", alerts + db.scalar("SELECT count(*) FROM assets_asset"))

    # References: every trigger row carries the UUID of the alert its integer id names.
    triggers = db.scalar("SELECT count(*) FROM investments_alerttrigger")
    assert db.scalar("SELECT count(*) FROM investments_alerttrigger t JOIN investments_alert a "
                     "ON a.uuid = t.alert_uuid AND a.id = t.alert_id") == triggers
    checked.add("trigger references", triggers)

    # Archives: every deprecated text archived; every removed duplicate has its before-image.
    archived = set(db.rows("SELECT asset_id, field, value FROM assets_assetlegacytext"))
    assert before.texts <= archived, f"{len(before.texts - archived)} text value(s) not archived"
    checked.add("legacy texts archived", len(before.texts))
    removed = {int(r[0]) for r in db.rows("SELECT row_key FROM assets_assetmergearchive "
                                          "WHERE table_name = 'assets_asset' AND action = 'removed'")}
    losers = {m for _, _, members in before.groups for m in members}
    assert len(removed) == before.removed_assets and removed <= losers
    assert db.scalar("SELECT count(*) FROM assets_asset WHERE id = ANY(%s)", [list(removed)]) == 0
    checked.add("merged assets archived", len(removed))

    # Holdings: each portfolio holds the same quantity of each instrument as before.
    survivors = {(t, e): s for t, e, s in db.rows(
        "SELECT ticker, exchange_id, survivor_id FROM assets_duplicatetickergroup")}
    after: dict[tuple, Decimal] = defaultdict(Decimal)
    for portfolio, asset, quantity in db.rows(
        "SELECT portfolio_id, asset_id, quantity FROM portfolios_holding WHERE NOT is_deleted"
    ):
        after[(portfolio, asset)] += quantity
    for (portfolio, key), quantity in before.live_quantity.items():
        asset = survivors[key] if isinstance(key, tuple) else key
        assert after[(portfolio, asset)] == quantity, (portfolio, key)
    checked.add("holding quantities", len(before.live_quantity))


def check_oracle(db: Database, before: Before, checked: Checked) -> None:
    """The seeded rows as the independent oracle says the jobs must leave them."""
    want = oracle.expected(before.legacy)
    with db.connect() as conn, conn.cursor() as cursor:
        found = oracle.differences(want, oracle.actual(cursor, before.legacy))
    assert found == [], found
    checked.add(ORACLE_CHECK, oracle.rows_compared(want))


def job_results(db: Database, before: Before) -> dict[str, list]:
    """The jobs' observable results on the seeded rows; uuids compared by structure only."""
    m = before.max_id
    queries = {
        "legacy texts archive": "SELECT asset_id, field, value, outcome, matched_id "
                                "FROM assets_assetlegacytext ORDER BY 1, 2, 3",
        "assets (survivors, links)": "SELECT id, ticker, exchange_id, is_deleted, sector_ref_id, "
                                     "industry_ref_id FROM assets_asset WHERE id <= %(assets)s "
                                     "ORDER BY id",
        "duplicate groups": "SELECT id, ticker, exchange_id, member_count, survivor_id, "
                            "merged_at IS NOT NULL FROM assets_duplicatetickergroup ORDER BY id",
        "merge archive": "SELECT group_id, survivor_id, table_name, row_key, action, "
                         "before - %(volatile)s::text[] FROM assets_assetmergearchive "
                         "ORDER BY table_name, row_key::bigint, action",
        "holdings": "SELECT id, portfolio_id, asset_id, quantity, average_cost, is_deleted "
                    "FROM portfolios_holding ORDER BY id",
        "watchlist": "SELECT id, user_id, asset_id, is_deleted FROM investments_watchlist "
                     "WHERE id <= %(watchlist)s ORDER BY id",
        "prices": "SELECT id, asset_id, timestamp FROM assets_assetpriceshistoric ORDER BY id",
        "news links": "SELECT newsarticle_id, asset_id FROM investments_newsarticle_assets ORDER BY 1, 2",
        "benchmarks": "SELECT id, asset_id FROM portfolios_benchmark ORDER BY id",
        "alerts": "SELECT id, asset_id, user_id, condition, threshold, is_active, is_deleted, "
                  "uuid IS NOT NULL FROM investments_alert "
                  "WHERE id <= %(alerts)s ORDER BY id",
        "trigger references": "SELECT t.id, t.alert_id, t.alert_uuid = a.uuid FROM "
                              "investments_alerttrigger t JOIN investments_alert a ON a.id = t.alert_id "
                              "WHERE t.id <= %(triggers)s ORDER BY t.id",
        "alert uuids (structure)": "SELECT count(*), count(DISTINCT uuid), count(uuid), "
                                   "count(*) FILTER (WHERE uuid::text ~ '^[0-9a-f-]{36}$') "
                                   "FROM investments_alert WHERE id <= %(alerts)s",
        "job reports": "SELECT job_name, report FROM migrations_worker_jobrun "
                       "WHERE status = 'finished' AND job_name IN ('legacy_columns', 'ticker_dedup') "
                       "ORDER BY job_name",
    }
    params = {"assets": m["assets_asset"], "watchlist": m["investments_watchlist"],
              "alerts": m["investments_alert"], "triggers": m["investments_alerttrigger"],
              "volatile": list(VOLATILE_IMAGE_KEYS)}
    return {name: db.rows(query, params if "%(" in query else None)
            for name, query in queries.items()}
