"""`ticker_dedup`: merge each duplicate (ticker, exchange) group into one asset.

Survivor rule (deterministic): the lowest-id member that is not soft-deleted; if every member is
soft-deleted, the lowest-id member (which stays soft-deleted). Every other member is removed
after everything that referred to it points at the survivor:

- holdings: one live position per portfolio: quantities summed, average cost weighted by
  quantity, kept on the survivor's holding if the portfolio had one, else on the lowest id;
  soft-deleted holdings are re-pointed as they are;
- watchlist entries: one per user, preferring a live entry, then the survivor's, then the
  lowest id;
- price rows: one per timestamp, preferring the survivor's, then the lowest id;
- news links: one per article, preferring the survivor's, then the lowest id;
- alerts and benchmarks: re-pointed.

Each removed or changed row's before-image goes to `assets_assetmergearchive` first, so every
merge can be audited and undone, and each removed asset's id becomes an alias of the survivor
(`assets_assetalias`) in the same transaction: from then on a write that names it, from either
release, lands on the survivor (the redirect triggers of migration 0012). The job walks the
group list made by migration 0012, one group per batch: each merge is its own short
transaction. The decisions themselves (survivor, which colliding row stays, merged quantity and
cost) are the plain functions of `merge_rules`.

A batch done twice changes nothing: a group is marked merged (`merged_at`, `survivor_id`) in the
transaction that merges it, and a batch skips merged groups; the trigger of migration 0010 stops
new duplicates, so a merged group stays merged. Done when no two assets share a (ticker,
exchange).
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from psycopg import sql

from migrations_worker.job import BatchResult, Job, register

from .merge_rules import Claim, Member, Position, choose_keeper, choose_survivor, merged_position

ASSETS = "assets_asset"
GROUPS = "assets_duplicatetickergroup"
ARCHIVE = "assets_assetmergearchive"
ALIASES = "assets_assetalias"
HOLDINGS = "portfolios_holding"
WATCHLIST = "investments_watchlist"
PRICES = "assets_assetpriceshistoric"
NEWS_LINKS = "investments_newsarticle_assets"
ALERTS = "investments_alert"
BENCHMARKS = "portfolios_benchmark"
# Every table with a foreign key to assets_asset; a test compares this with the catalog.
REFERENCING_TABLES = (HOLDINGS, WATCHLIST, PRICES, NEWS_LINKS, ALERTS, BENCHMARKS)


class Merge:
    """One group's merge, inside the engine's transaction for the batch."""

    def __init__(self, cursor, group_id: int, survivor: int, losers: list[int]):
        self.cursor = cursor
        self.group_id = group_id
        self.survivor = survivor
        self.losers = losers
        self.members = [survivor, *losers]
        self.counts: dict[str, int] = defaultdict(int)

    def rows(self, table: str, columns: list[str]) -> list[tuple]:
        self.cursor.execute(
            sql.SQL("SELECT {cols} FROM {t} WHERE asset_id = ANY(%s) ORDER BY id FOR UPDATE").format(
                cols=sql.SQL(", ").join(map(sql.Identifier, columns)), t=sql.Identifier(table)
            ),
            [self.members],
        )
        return self.cursor.fetchall()

    def archive(self, table: str, ids: list, action: str) -> None:
        if not ids:
            return
        self.cursor.execute(
            sql.SQL(
                "INSERT INTO {archive} (group_id, survivor_id, table_name, row_key, action, "
                "before, archived_at) SELECT %s, %s, %s, t.id::text, %s, to_jsonb(t), now() "
                "FROM {t} AS t WHERE t.id = ANY(%s)"
            ).format(archive=sql.Identifier(ARCHIVE), t=sql.Identifier(table)),
            [self.group_id, self.survivor, table, action, ids],
        )

    def remove(self, table: str, ids: list) -> None:
        if not ids:
            return
        self.archive(table, ids, "removed")
        self.cursor.execute(
            sql.SQL("DELETE FROM {t} WHERE id = ANY(%s)").format(t=sql.Identifier(table)), [ids]
        )
        self.counts["rows_merged_away"] += len(ids)

    def repoint(self, table: str, ids: list) -> None:
        if not ids:
            return
        self.archive(table, ids, "changed")
        self.cursor.execute(
            sql.SQL("UPDATE {t} SET asset_id = %s WHERE id = ANY(%s)").format(t=sql.Identifier(table)),
            [self.survivor, ids],
        )
        self.counts["rows_repointed"] += len(ids)

    def keep_one_per(self, table: str, key: str, prefer_alive: bool = False) -> None:
        """Rows sharing `key` collapse to their keeper (live first if `prefer_alive`, which reads
        the table's `is_deleted`), which moves to the survivor."""
        columns = ["id", "asset_id", key] + (["is_deleted"] if prefer_alive else [])
        by_key: dict = defaultdict(list)
        for row_id, asset_id, value, *deleted in self.rows(table, columns):
            by_key[value].append(Claim(row_id, asset_id, *deleted))
        remove, repoint = [], []
        for claims in by_key.values():
            keeper = choose_keeper(claims, self.survivor)
            remove += [c.id for c in claims if c is not keeper]
            if keeper.asset_id != self.survivor:
                repoint.append(keeper.id)
        self.remove(table, remove)
        self.repoint(table, repoint)

    def merge_holdings(self) -> None:
        rows = self.rows(HOLDINGS, ["id", "asset_id", "portfolio_id", "quantity", "average_cost",
                                    "is_deleted"])
        live: dict[UUID, dict[Claim, Position]] = defaultdict(dict)
        for row_id, asset_id, portfolio_id, quantity, cost, is_deleted in rows:
            if is_deleted:
                if asset_id != self.survivor:
                    self.repoint(HOLDINGS, [row_id])
            else:
                live[portfolio_id][Claim(row_id, asset_id)] = Position(quantity, cost)
        for positions in live.values():
            keeper = choose_keeper(list(positions), self.survivor)
            others = [c.id for c in positions if c is not keeper]
            if not others and keeper.asset_id == self.survivor:
                continue
            merged = merged_position(list(positions.values()), positions[keeper].average_cost)
            self.archive(HOLDINGS, [keeper.id], "changed")
            self.cursor.execute(
                sql.SQL(
                    "UPDATE {t} SET asset_id = %s, quantity = %s, average_cost = %s, "
                    "updated_at = now() WHERE id = %s"
                ).format(t=sql.Identifier(HOLDINGS)),
                [self.survivor, merged.quantity, merged.average_cost, keeper.id],
            )
            self.counts["rows_repointed"] += 1
            if others:
                self.counts["holdings_merged"] += len(others)
            self.remove(HOLDINGS, others)

    def run(self) -> dict[str, int]:
        self.merge_holdings()
        self.keep_one_per(WATCHLIST, "user_id", prefer_alive=True)
        self.keep_one_per(PRICES, "timestamp")
        self.keep_one_per(NEWS_LINKS, "newsarticle_id")
        for table in (ALERTS, BENCHMARKS):
            self.cursor.execute(
                sql.SQL("SELECT id FROM {t} WHERE asset_id = ANY(%s) ORDER BY id FOR UPDATE").format(
                    t=sql.Identifier(table)
                ),
                [self.losers],
            )
            self.repoint(table, [r[0] for r in self.cursor.fetchall()])
        self.archive(ASSETS, self.losers, "removed")
        self.cursor.execute(
            sql.SQL("INSERT INTO {aliases} (asset_id, survivor_id, group_id, created_at) "
                    "SELECT unnest(%s::bigint[]), %s, %s, now() ON CONFLICT (asset_id) DO NOTHING"
                    ).format(aliases=sql.Identifier(ALIASES)),
            [self.losers, self.survivor, self.group_id],
        )
        self.cursor.execute(
            sql.SQL("DELETE FROM {t} WHERE id = ANY(%s)").format(t=sql.Identifier(ASSETS)),
            [self.losers],
        )
        self.counts["assets_removed"] += len(self.losers)
        self.counts["groups_merged"] += 1
        return dict(self.counts)


@register
class TickerDedup(Job):
    name = "ticker_dedup"
    table = GROUPS
    description = "merge duplicate (ticker, exchange) assets and re-point what refers to them"
    watched_tables = (ASSETS, *REFERENCING_TABLES)
    # One group per batch: each merge commits on its own.
    defaults = {"batch_size": 1, "min_batch_size": 1, "max_batch_size": 1}

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        cursor.execute(
            sql.SQL("SELECT id, ticker, exchange_id FROM {g} WHERE id > %s AND id <= %s "
                    "AND merged_at IS NULL ORDER BY id").format(g=sql.Identifier(GROUPS)),
            [start, end],
        )
        totals: dict[str, int] = defaultdict(int)
        for group_id, ticker, exchange_id in cursor.fetchall():
            cursor.execute(
                sql.SQL("SELECT id, is_deleted FROM {a} WHERE ticker = %s AND exchange_id = %s "
                        "ORDER BY id FOR UPDATE").format(a=sql.Identifier(ASSETS)),
                [ticker, exchange_id],
            )
            members = [Member(*row) for row in cursor.fetchall()]
            survivor = choose_survivor(members)
            losers = [m.id for m in members if m.id != survivor]
            for name, value in Merge(cursor, group_id, survivor, losers).run().items():
                totals[name] += value
            cursor.execute(
                sql.SQL("UPDATE {g} SET survivor_id = %s, merged_at = now() WHERE id = %s").format(
                    g=sql.Identifier(GROUPS)
                ),
                [survivor, group_id],
            )
        return BatchResult(rows=totals.get("groups_merged", 0), counts=dict(totals))

    def count_remaining(self, cursor) -> int:
        cursor.execute(
            sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {a} GROUP BY ticker, exchange_id "
                    "HAVING count(*) > 1) AS duplicates").format(a=sql.Identifier(ASSETS))
        )
        return cursor.fetchone()[0]
