"""Contenders: each data job as one transaction of set-based SQL, what a plain SQL migration does.

They do the same work as the engine's jobs (the benchmark checks that the end state matches) and
set the speed limit: no batches, no bookkeeping, no round trips. The price is that every row
they touch stays locked until the single COMMIT, which is what the live load's latency shows.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from assets.jobs.legacy_columns import ARCHIVE_AND_LINK, ASSETS, FIELDS, query

# -- alerts_uuid ------------------------------------------------------------------------------

ALERTS = "UPDATE investments_alert SET uuid = gen_random_uuid() WHERE uuid IS NULL"
ALERT_REFERENCES = """
UPDATE investments_alerttrigger t SET alert_uuid = a.uuid
FROM investments_alert a
WHERE t.alert_id = a.id AND t.alert_uuid IS DISTINCT FROM a.uuid
"""


def alerts_uuid(conn: psycopg.Connection) -> dict:
    """`UPDATE ... WHERE uuid IS NULL`, then the trigger rows, in one transaction."""
    started = time.monotonic()
    with conn.transaction():
        rows = conn.execute(ALERTS).rowcount
        alerts_seconds = time.monotonic() - started
        references = conn.execute(ALERT_REFERENCES).rowcount
    return {"rows": rows, "references": references, "alerts_seconds": alerts_seconds,
            "seconds": time.monotonic() - started}


# -- legacy_columns ---------------------------------------------------------------------------


def legacy_columns(conn: psycopg.Connection) -> dict:
    """The job's own statement, once per column, over the whole key range."""
    started = time.monotonic()
    archived = 0
    with conn.transaction():
        low, high = conn.execute(
            sql.SQL("SELECT min(id), max(id) FROM {}").format(sql.Identifier(ASSETS))).fetchone()
        for text, link in FIELDS:
            archived += conn.execute(query(ARCHIVE_AND_LINK, text, link),
                                     {"start": low - 1, "end": high, "field": text}).fetchone()[0]
    return {"rows": archived, "seconds": time.monotonic() - started}


# -- ticker_dedup -----------------------------------------------------------------------------
# The job's rules, set-based: survivor = the lowest live member (else the lowest); holdings of
# one portfolio summed onto one row with a quantity-weighted cost; one watchlist entry per user
# (live first), one price per timestamp, one news link per article (the survivor's first, then
# the lowest id); alerts and benchmarks re-pointed; a before-image of every changed or removed
# row archived first.

MEMBERS = """
CREATE TEMP TABLE bench_member ON COMMIT DROP AS
SELECT g.id AS group_id, a.id AS asset_id,
       first_value(a.id) OVER (PARTITION BY g.id ORDER BY a.is_deleted, a.id) AS survivor
FROM assets_duplicatetickergroup g
JOIN assets_asset a ON a.ticker = g.ticker AND a.exchange_id = g.exchange_id
WHERE g.merged_at IS NULL
"""

ARCHIVE_ROWS = """
INSERT INTO assets_assetmergearchive (group_id, survivor_id, table_name, row_key, action, before,
                                      archived_at)
SELECT x.group_id, x.survivor, {name}, t.id::text, {action}, to_jsonb(t), now()
FROM {table} t JOIN {work} x ON x.id = t.id
WHERE {condition}
"""

HOLDINGS = """
CREATE TEMP TABLE bench_work ON COMMIT DROP AS
SELECT h.id, h.asset_id, h.is_deleted, h.average_cost, m.group_id, m.survivor,
       row_number() OVER w AS rn, count(*) OVER w AS n,
       sum(h.quantity) OVER w AS quantity, sum(h.quantity * h.average_cost) OVER w AS cost_total
FROM portfolios_holding h JOIN bench_member m ON m.asset_id = h.asset_id
WINDOW w AS (PARTITION BY m.group_id, h.portfolio_id, h.is_deleted
             ORDER BY h.asset_id <> m.survivor, h.id
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
"""
HOLDING_REMOVED = "NOT x.is_deleted AND x.rn > 1"
HOLDING_KEPT = "NOT x.is_deleted AND x.rn = 1 AND (x.n > 1 OR x.asset_id <> x.survivor)"
HOLDING_DELETED_MOVED = "x.is_deleted AND x.asset_id <> x.survivor"
HOLDING_UPDATES = [
    ("DELETE FROM portfolios_holding t USING bench_work x WHERE t.id = x.id AND {condition}",
     HOLDING_REMOVED),
    ("UPDATE portfolios_holding t SET asset_id = x.survivor, quantity = x.quantity, "
     "average_cost = CASE WHEN x.quantity <> 0 THEN round(x.cost_total / x.quantity, 8) "
     "ELSE x.average_cost END, updated_at = now() "
     "FROM bench_work x WHERE t.id = x.id AND {condition}", HOLDING_KEPT),
    ("UPDATE portfolios_holding t SET asset_id = x.survivor FROM bench_work x "
     "WHERE t.id = x.id AND {condition}", HOLDING_DELETED_MOVED),
]

KEEP_ONE = """
CREATE TEMP TABLE bench_work ON COMMIT DROP AS
SELECT t.id, t.asset_id, m.group_id, m.survivor,
       row_number() OVER (PARTITION BY m.group_id, t.{key}
                          ORDER BY {alive_first} t.asset_id <> m.survivor, t.id) AS rn
FROM {table} t JOIN bench_member m ON m.asset_id = t.asset_id
"""
KEEP_REMOVED = "x.rn > 1"
KEEP_MOVED = "x.rn = 1 AND x.asset_id <> x.survivor"

REPOINT = """
CREATE TEMP TABLE bench_work ON COMMIT DROP AS
SELECT t.id, t.asset_id, m.group_id, m.survivor
FROM {table} t JOIN bench_member m ON m.asset_id = t.asset_id WHERE t.asset_id <> m.survivor
"""

FINISH = [
    "CREATE TEMP TABLE bench_work ON COMMIT DROP AS "
    "SELECT asset_id AS id, asset_id, group_id, survivor FROM bench_member "
    "WHERE asset_id <> survivor",
    "DELETE FROM assets_asset a USING bench_work x WHERE a.id = x.id",
    "UPDATE assets_duplicatetickergroup g SET survivor_id = m.survivor, merged_at = now() "
    "FROM (SELECT DISTINCT group_id, survivor FROM bench_member) m WHERE g.id = m.group_id",
]


def _run(conn: psycopg.Connection, template: str, **parts) -> int:
    formatted = sql.SQL(template).format(
        **{k: v if isinstance(v, sql.Composable) else sql.Identifier(v) for k, v in parts.items()})
    return conn.execute(formatted).rowcount


def _archive(conn, table: str, condition: str, action: str) -> None:
    _run(conn, ARCHIVE_ROWS, table=table, work="bench_work", condition=sql.SQL(condition),
         name=sql.Literal(table), action=sql.Literal(action))


def ticker_dedup(conn: psycopg.Connection) -> dict:
    started = time.monotonic()
    with conn.transaction():
        _run(conn, MEMBERS)
        conn.execute("CREATE INDEX ON bench_member (asset_id)")
        conn.execute("ANALYZE bench_member")
        groups = conn.execute("SELECT count(DISTINCT group_id) FROM bench_member").fetchone()[0]

        _run(conn, HOLDINGS)
        _archive(conn, "portfolios_holding", HOLDING_REMOVED, "removed")
        _archive(conn, "portfolios_holding", f"({HOLDING_KEPT}) OR ({HOLDING_DELETED_MOVED})",
                 "changed")
        for statement, condition in HOLDING_UPDATES:
            _run(conn, statement, condition=sql.SQL(condition))
        conn.execute("DROP TABLE bench_work")

        for table, key, alive_first in (("investments_watchlist", "user_id", True),
                                        ("assets_assetpriceshistoric", "timestamp", False),
                                        ("investments_newsarticle_assets", "newsarticle_id", False)):
            _run(conn, KEEP_ONE, table=table, key=key,
                 alive_first=sql.SQL("t.is_deleted," if alive_first else ""))
            _archive(conn, table, KEEP_REMOVED, "removed")
            _archive(conn, table, KEEP_MOVED, "changed")
            _run(conn, "DELETE FROM {table} t USING bench_work x WHERE t.id = x.id AND {condition}",
                 table=table, condition=sql.SQL(KEEP_REMOVED))
            _run(conn, "UPDATE {table} t SET asset_id = x.survivor FROM bench_work x "
                 "WHERE t.id = x.id AND {condition}", table=table, condition=sql.SQL(KEEP_MOVED))
            conn.execute("DROP TABLE bench_work")

        for table in ("investments_alert", "portfolios_benchmark"):
            _run(conn, REPOINT, table=table)
            _archive(conn, table, "true", "changed")
            _run(conn, "UPDATE {table} t SET asset_id = x.survivor FROM bench_work x "
                 "WHERE t.id = x.id", table=table)
            conn.execute("DROP TABLE bench_work")

        _run(conn, FINISH[0])
        _archive(conn, "assets_asset", "true", "removed")
        for statement in FINISH[1:]:
            conn.execute(statement)
    return {"rows": groups, "seconds": time.monotonic() - started}
