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
group list made by migration 0012, several groups per batch, as many as the engine's batch
sizing allows for its target batch duration: a batch reads and writes every group of its range
together, a few statements per table whatever the number of groups, and commits them in one
transaction, so each group is merged completely or not at all. The decisions themselves
(survivor, which colliding row stays, merged quantity and cost) are the plain functions of
`merge_rules`, made group by group in Python.

A batch done twice changes nothing: a group is marked merged (`merged_at`, `survivor_id`) in the
transaction that merges it, and a batch skips merged groups; the trigger of migration 0010 stops
new duplicates, so a merged group stays merged. Done when no two assets share a (ticker,
exchange).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Group:
    id: int
    survivor: int
    losers: tuple[int, ...]


class Merge:
    """The merge of the groups of one batch, inside the engine's transaction for the batch.

    Every statement covers all the groups: rows are read for every member at once, decided on
    group by group, and written with one statement per table and action, each row carrying its
    own group and survivor."""

    def __init__(self, cursor, groups: list[Group]):
        self.cursor = cursor
        self.groups = groups
        self.group_of: dict[int, Group] = {}
        for group in groups:
            for member in (group.survivor, *group.losers):
                self.group_of[member] = group
        self.members = sorted(self.group_of)
        self.losers = [loser for group in groups for loser in group.losers]
        self.counts: dict[str, int] = defaultdict(int)

    def rows(self, table: str, columns: list[str], assets: list[int] | None = None) -> list[tuple]:
        """The rows of `table` naming any of `assets` (every member), locked, by id."""
        self.cursor.execute(
            sql.SQL("SELECT {cols} FROM {t} WHERE asset_id = ANY(%s) ORDER BY id FOR UPDATE").format(
                cols=sql.SQL(", ").join(map(sql.Identifier, columns)), t=sql.Identifier(table)
            ),
            [self.members if assets is None else assets],
        )
        return self.cursor.fetchall()

    def archive(self, table: str, rows: list[tuple[int, Group]], action: str) -> None:
        """The before-image of each row, with the group it is merged in and its survivor."""
        if not rows:
            return
        self.cursor.execute(
            sql.SQL(
                "INSERT INTO {archive} (group_id, survivor_id, table_name, row_key, action, "
                "before, archived_at) SELECT x.group_id, x.survivor, %s, t.id::text, %s, "
                "to_jsonb(t), now() FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) "
                "AS x(id, group_id, survivor) JOIN {t} AS t ON t.id = x.id ORDER BY x.id"
            ).format(archive=sql.Identifier(ARCHIVE), t=sql.Identifier(table)),
            [table, action, [row_id for row_id, _ in rows], [g.id for _, g in rows],
             [g.survivor for _, g in rows]],
        )

    def remove(self, table: str, rows: list[tuple[int, Group]]) -> None:
        if not rows:
            return
        self.archive(table, rows, "removed")
        self.cursor.execute(
            sql.SQL("DELETE FROM {t} WHERE id = ANY(%s)").format(t=sql.Identifier(table)),
            [[row_id for row_id, _ in rows]],
        )
        self.counts["rows_merged_away"] += len(rows)

    def repoint(self, table: str, rows: list[tuple[int, Group]]) -> None:
        if not rows:
            return
        self.archive(table, rows, "changed")
        self.cursor.execute(
            sql.SQL("UPDATE {t} AS t SET asset_id = x.survivor FROM unnest(%s::bigint[], "
                    "%s::bigint[]) AS x(id, survivor) WHERE t.id = x.id").format(
                        t=sql.Identifier(table)),
            [[row_id for row_id, _ in rows], [g.survivor for _, g in rows]],
        )
        self.counts["rows_repointed"] += len(rows)

    def keep_one_per(self, table: str, key: str, prefer_alive: bool = False) -> None:
        """Rows of a group sharing `key` collapse to their keeper (live first if
        `prefer_alive`, which reads the table's `is_deleted`), which moves to the survivor."""
        columns = ["id", "asset_id", key] + (["is_deleted"] if prefer_alive else [])
        by_key: dict = defaultdict(list)
        for row_id, asset_id, value, *deleted in self.rows(table, columns):
            by_key[self.group_of[asset_id], value].append(Claim(row_id, asset_id, *deleted))
        remove, repoint = [], []
        for (group, _value), claims in by_key.items():
            keeper = choose_keeper(claims, group.survivor)
            remove += [(c.id, group) for c in claims if c is not keeper]
            if keeper.asset_id != group.survivor:
                repoint.append((keeper.id, group))
        self.remove(table, remove)
        self.repoint(table, repoint)

    def merge_holdings(self) -> None:
        rows = self.rows(HOLDINGS, ["id", "asset_id", "portfolio_id", "quantity", "average_cost",
                                    "is_deleted"])
        live: dict[tuple[Group, UUID], dict[Claim, Position]] = defaultdict(dict)
        deleted_moved = []
        for row_id, asset_id, portfolio_id, quantity, cost, is_deleted in rows:
            group = self.group_of[asset_id]
            if is_deleted:
                if asset_id != group.survivor:
                    deleted_moved.append((row_id, group))
            else:
                live[group, portfolio_id][Claim(row_id, asset_id)] = Position(quantity, cost)
        kept, merged, others = [], [], []
        for (group, _portfolio), positions in live.items():
            keeper = choose_keeper(list(positions), group.survivor)
            away = [(c.id, group) for c in positions if c is not keeper]
            if not away and keeper.asset_id == group.survivor:
                continue
            kept.append((keeper.id, group))
            merged.append(merged_position(list(positions.values()),
                                          positions[keeper].average_cost))
            others += away
        self.repoint(HOLDINGS, deleted_moved)  # soft-deleted holdings move as they are
        self.archive(HOLDINGS, kept, "changed")
        if kept:
            self.cursor.execute(
                sql.SQL(
                    "UPDATE {t} AS t SET asset_id = x.survivor, quantity = x.quantity, "
                    "average_cost = x.average_cost, updated_at = now() FROM unnest(%s::bigint[], "
                    "%s::bigint[], %s::numeric[], %s::numeric[]) "
                    "AS x(id, survivor, quantity, average_cost) WHERE t.id = x.id"
                ).format(t=sql.Identifier(HOLDINGS)),
                [[row_id for row_id, _ in kept], [g.survivor for _, g in kept],
                 [p.quantity for p in merged], [p.average_cost for p in merged]],
            )
            self.counts["rows_repointed"] += len(kept)
        if others:
            self.counts["holdings_merged"] += len(others)
        self.remove(HOLDINGS, others)

    def run(self) -> dict[str, int]:
        self.merge_holdings()
        self.keep_one_per(WATCHLIST, "user_id", prefer_alive=True)
        self.keep_one_per(PRICES, "timestamp")
        self.keep_one_per(NEWS_LINKS, "newsarticle_id")
        for table in (ALERTS, BENCHMARKS):
            self.repoint(table, [(row_id, self.group_of[asset_id]) for row_id, asset_id
                                 in self.rows(table, ["id", "asset_id"], self.losers)])
        losers = [(loser, group) for group in self.groups for loser in group.losers]
        self.archive(ASSETS, losers, "removed")
        self.cursor.execute(
            sql.SQL("INSERT INTO {aliases} (asset_id, survivor_id, group_id, created_at) "
                    "SELECT x.asset_id, x.survivor, x.group_id, now() FROM unnest(%s::bigint[], "
                    "%s::bigint[], %s::bigint[]) AS x(asset_id, survivor, group_id) "
                    "ON CONFLICT (asset_id) DO NOTHING").format(aliases=sql.Identifier(ALIASES)),
            [[loser for loser, _ in losers], [g.survivor for _, g in losers],
             [g.id for _, g in losers]],
        )
        self.cursor.execute(
            sql.SQL("DELETE FROM {t} WHERE id = ANY(%s)").format(t=sql.Identifier(ASSETS)),
            [self.losers],
        )
        self.cursor.execute(
            sql.SQL("UPDATE {g} AS g SET survivor_id = x.survivor, merged_at = now() "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS x(id, survivor) "
                    "WHERE g.id = x.id").format(g=sql.Identifier(GROUPS)),
            [[g.id for g in self.groups], [g.survivor for g in self.groups]],
        )
        self.counts["assets_removed"] += len(self.losers)
        self.counts["groups_merged"] += len(self.groups)
        return dict(self.counts)


# The members of every group of the range not merged yet, locked, in id order (each group's
# members found through the (ticker, exchange_id) index of migration 0009).
MEMBERS = """
SELECT g.id, a.id, a.is_deleted
FROM {groups} AS g JOIN {assets} AS a ON a.ticker = g.ticker AND a.exchange_id = g.exchange_id
WHERE g.id > %s AND g.id <= %s AND g.merged_at IS NULL
ORDER BY a.id FOR UPDATE OF a
"""


@register
class TickerDedup(Job):
    name = "ticker_dedup"
    table = GROUPS
    description = "merge duplicate (ticker, exchange) assets and re-point what refers to them"
    watched_tables = (ASSETS, *REFERENCING_TABLES)
    # Groups per batch, sized by the engine toward a short batch: a batch holds the row locks of
    # all its groups until it commits, so a statement that meets one waits about that long. The
    # first batch is one group, the engine's measure still to come.
    defaults = {"batch_size": 1, "min_batch_size": 1, "max_batch_size": 500,
                "target_batch_seconds": 0.08}
    # Groups merged a second, one worker: bench/results/scale/scale.md, xlarge, the staged
    # deploy with 2 Celery workers and the live load on (medium: 105).
    measured_rows_per_second = 78.0
    # What a group merged writes (every row of its members re-pointed, merged or archived as a
    # jsonb before-image): bench/results/medium/footprint.md.
    measured_wal_bytes_per_row = 80_084.0
    measured_growth_bytes_per_row = 42_208.0

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        cursor.execute(sql.SQL(MEMBERS).format(groups=sql.Identifier(GROUPS),
                                               assets=sql.Identifier(ASSETS)), [start, end])
        members: dict[int, list[Member]] = defaultdict(list)
        for group_id, asset_id, is_deleted in cursor.fetchall():
            members[group_id].append(Member(asset_id, is_deleted))
        groups = []
        for group_id, group_members in sorted(members.items()):
            survivor = choose_survivor(group_members)
            groups.append(Group(group_id, survivor,
                                tuple(m.id for m in group_members if m.id != survivor)))
        if not groups:
            return BatchResult(rows=0)
        counts = Merge(cursor, groups).run()
        return BatchResult(rows=counts.get("groups_merged", 0), counts=counts)

    def count_remaining(self, cursor) -> int:
        cursor.execute(
            sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {a} GROUP BY ticker, exchange_id "
                    "HAVING count(*) > 1) AS duplicates").format(a=sql.Identifier(ASSETS))
        )
        return cursor.fetchone()[0]
