"""`ticker_dedup_undo`: put merged duplicate groups back, from the before-images of the merge.

`backfill undo ticker_dedup [--group TICKER:MIC]...` marks the groups to put back
(`undo_requested_at`; all merged ones when none is named) and runs this job. For each marked
merged group, in one transaction (the whole group or nothing), from the archive rows its merge
wrote (`undo_rules.plan` sorts them):

- every asset the merge removed is restored with its id, as it was; its id stops being an alias
  of the survivor (the duplicate guard of 0010 lets it in while the alias stands; the re-merge
  trigger of 0012 spares the row named in `assets.restoring_asset`);
- every row the merge re-pointed (alerts, benchmarks, soft-deleted holdings, the kept watchlist
  entry, price and news link) goes back to the asset it named, if it still names the survivor;
- every row the merge removed (one per key) is inserted again, with its id, if that id is free
  (and, for a news link, the article has no link to that asset);
- every position the merge summed is split back: the holding that kept it returns to its own
  quantity and cost and the holdings summed into it come back, if it still holds exactly what
  the merge left (the survivor, the summed quantity, the weighted cost);
- rows written after the merge that named a removed asset (`redirected`) stay where they are,
  on the survivor, and rows such a write replaced stay replaced: both are reported.

A row that changed since the merge is reported and never overwritten: the run's report counts
them, the group's `undo_report` lists them, and `backfill undo` and `backfill status` print
them. Then the group is marked not merged (`merged_at` NULL, `undone_at` set) and its archive
rows consumed (`undone_at`), so `ticker_dedup` may merge it again (its next run, or a gate on it,
will) and the archive keeps every merge and undo for audit.

Refused while UNIQUE (ticker, exchange) stands (assets 0014): the duplicates cannot come back;
`manage.py migrate assets 0013` takes the post-deploy stage back first.

A batch done twice changes nothing: it walks only groups that are marked and still merged, and
marks each not merged in the transaction that puts it back. Done when no marked group is still
merged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from psycopg import sql

from migrations_worker.exceptions import InvalidInput
from migrations_worker.job import BatchResult, UndoJob, register

from .ticker_dedup import ALIASES, ARCHIVE, ASSETS, GROUPS, HOLDINGS, NEWS_LINKS, REFERENCING_TABLES
from .undo_rules import Archived, Plan, Split, plan, position_as_merged, still_as_merged

EXCHANGES = "assets_exchange"
UNIQUE_INDEX = "assets_asset_ticker_exchange_unique"  # assets 0014
# The tables whose rows an archive row may name; nothing else is ever written from the archive.
TABLES = frozenset({ASSETS, *REFERENCING_TABLES})

REFUSED = (
    "UNIQUE (ticker, exchange) of assets 0014 stands, and the duplicates cannot come back while it "
    "does. Take the post-deploy stage back first: python manage.py migrate assets 0013 (drops the "
    "constraint, puts the duplicate guard back), then undo again. The next post-deploy stage "
    "merges again every group still duplicated."
)

# A group's archive rows no undo consumed yet. Those of the merge itself were written in the
# transaction that marked the group merged, so they carry its now(): `archived_at = merged_at`.
# The redirect triggers write theirs in the writers' own transactions (they need the alias the
# merge committed), which carry their own start time, not the merge's.
ARCHIVED = """
SELECT x.id, x.table_name, x.row_key, x.action, x.before::text, x.archived_at = g.merged_at
FROM {archive} x JOIN {groups} g ON g.id = x.group_id
WHERE x.group_id = %s AND x.undone_at IS NULL
ORDER BY x.id
"""

INSERT_IMAGE = "INSERT INTO {t} ({columns}) SELECT {columns} FROM jsonb_populate_record(NULL::{t}, %s::jsonb)"

SPLIT_BACK = """
UPDATE {holdings} SET asset_id = %(asset)s, quantity = %(quantity)s, average_cost = %(cost)s,
       updated_at = CASE WHEN updated_at = %(merged_at)s THEN %(updated)s::timestamptz
                         ELSE updated_at END
WHERE id = %(id)s
"""

FINDINGS = """
SELECT g.ticker || ':' || coalesce(e.mic, g.exchange_id::text), g.undo_report
FROM {groups} g LEFT JOIN {exchanges} e ON e.id = g.exchange_id
WHERE g.undone_at >= %s AND g.undo_report IS NOT NULL
ORDER BY g.id
"""


# What became of a write since the merge, by (is it an asset, archive action).
SINCE = {
    (False, "redirected"): "was written since the merge naming asset {named}: kept on the survivor",
    (False, "removed"): "was replaced by a write since the merge: stays replaced",
    (True, "redirected"): "was saved again since the merge and merged away at once: restored as "
                          "the merge found it (that save is in the archive)",
}


def decoded(text: str) -> dict:
    """A row image, its numbers exact (a quantity compared as a float would drift)."""
    return json.loads(text, parse_float=Decimal)


class GroupUndo:
    """One group's undo, inside the engine's transaction for the batch."""

    def __init__(self, cursor, group_id: int, survivor: int, merged_at: datetime):
        self.cursor = cursor
        self.group_id = group_id
        self.survivor = survivor
        self.merged_at = merged_at
        self.counts: dict[str, int] = defaultdict(int)
        self.kept: list[list] = []  # [table, id, why]: changed since the merge, left as it is
        self.since: list[list] = []  # [table, id, action, named asset]: written since the merge
        self._columns: dict[str, list[str]] = {}

    # -- reading ------------------------------------------------------------------------------

    def archived(self) -> list[Archived]:
        self.cursor.execute(sql.SQL(ARCHIVED).format(archive=sql.Identifier(ARCHIVE),
                                                     groups=sql.Identifier(GROUPS)),
                            [self.group_id])
        rows = [Archived(row_id, table, int(key), action, decoded(before), by_merge)
                for row_id, table, key, action, before, by_merge in self.cursor.fetchall()]
        unknown = {r.table for r in rows} - TABLES
        if unknown:
            raise ValueError(f"group {self.group_id}: archive rows of unknown tables {unknown}")
        return rows

    def current(self, table: str, ids: Sequence[int]) -> dict[int, dict]:
        """The rows as they are now, locked until the group is put back."""
        if not ids:
            return {}
        self.cursor.execute(
            sql.SQL("SELECT t.id, to_jsonb(t)::text FROM {t} AS t WHERE t.id = ANY(%s) "
                    "ORDER BY t.id FOR UPDATE").format(t=sql.Identifier(table)), [list(ids)])
        return {row_id: decoded(image) for row_id, image in self.cursor.fetchall()}

    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            self.cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", [table])
            self._columns[table] = [r[0] for r in self.cursor.fetchall()]
        return self._columns[table]

    # -- writing ------------------------------------------------------------------------------

    def insert(self, row: Archived) -> None:
        """The row as its before-image has it, with its id; columns added since take their
        defaults, columns dropped since (the legacy text) are left out."""
        columns = [c for c in self.columns(row.table) if c in row.before]
        self.cursor.execute(
            sql.SQL(INSERT_IMAGE).format(t=sql.Identifier(row.table),
                                         columns=sql.SQL(", ").join(map(sql.Identifier, columns))),
            [json.dumps(row.before, default=str)],
        )

    def keep(self, row: Archived, why: str) -> None:
        self.kept.append([row.table, row.row_id, why])
        self.counts["rows_changed_since_kept"] += 1

    def restore_assets(self, assets: list[Archived]) -> None:
        ids = [a.row_id for a in assets]
        taken = self.current(ASSETS, ids)
        if taken:
            raise ValueError(f"group {self.group_id}: asset(s) {sorted(taken)} exist again; "
                             "nothing of the group was put back")
        for asset in assets:
            self.cursor.execute("SELECT set_config('assets.restoring_asset', %s, true)",
                                [str(asset.row_id)])
            self.insert(asset)
        self.cursor.execute("SELECT set_config('assets.restoring_asset', '', true)")
        self.cursor.execute(
            sql.SQL("DELETE FROM {aliases} WHERE asset_id = ANY(%s)").format(
                aliases=sql.Identifier(ALIASES)), [ids])
        self.counts["assets_restored"] += len(ids)

    def split_back(self, splits: list[Split]) -> None:
        holdings = [a.row_id for s in splits for a in (s.keeper, *s.summed)]
        now = self.current(HOLDINGS, holdings)
        for split in splits:
            keeper = split.keeper
            why = position_as_merged(now.get(keeper.row_id), split, self.survivor)
            back_again = [a.row_id for a in split.summed if a.row_id in now]
            if not why and back_again:
                why = f"holding(s) {back_again} summed into it were written again since the merge"
            if why:
                summed = [a.row_id for a in split.summed]
                self.keep(keeper, why + (f"; {summed} stay summed into it" if summed else ""))
                continue
            before = keeper.before
            self.cursor.execute(
                sql.SQL(SPLIT_BACK).format(holdings=sql.Identifier(HOLDINGS)),
                {"asset": before["asset_id"], "quantity": before["quantity"],
                 "cost": before["average_cost"], "updated": before["updated_at"],
                 "merged_at": self.merged_at, "id": keeper.row_id},
            )
            for row in split.summed:
                self.insert(row)
            self.counts["positions_split"] += 1
            self.counts["rows_moved_back"] += 1
            self.counts["rows_inserted_again"] += len(split.summed)

    def by_table(self, rows: list[Archived]) -> Iterator[tuple[str, list[Archived], dict]]:
        """The rows grouped by their table, each group with its table's rows as they are now."""
        grouped: dict[str, list[Archived]] = defaultdict(list)
        for row in rows:
            grouped[row.table].append(row)
        for table, table_rows in grouped.items():
            yield table, table_rows, self.current(table, [r.row_id for r in table_rows])

    def move_back(self, rows: list[Archived]) -> None:
        for table, table_rows, now in self.by_table(rows):
            for row in table_rows:
                why = still_as_merged(now.get(row.row_id), self.survivor)
                if why:
                    self.keep(row, why)
                    continue
                self.cursor.execute(
                    sql.SQL("UPDATE {t} SET asset_id = %s WHERE id = %s").format(
                        t=sql.Identifier(table)), [row.before["asset_id"], row.row_id])
                self.counts["rows_moved_back"] += 1

    def insert_again(self, rows: list[Archived]) -> None:
        for table, table_rows, back in self.by_table(rows):
            for row in table_rows:
                if row.row_id in back:
                    self.keep(row, "written again since the merge (its id is taken)")
                elif table == NEWS_LINKS and self.linked(row.before):
                    self.keep(row, f"article {row.before['newsarticle_id']} links asset "
                                   f"{row.before['asset_id']} again since the merge")
                else:
                    self.insert(row)
                    self.counts["rows_inserted_again"] += 1

    def linked(self, link: dict) -> bool:
        self.cursor.execute(
            sql.SQL("SELECT 1 FROM {t} WHERE newsarticle_id = %s AND asset_id = %s").format(
                t=sql.Identifier(NEWS_LINKS)), [link["newsarticle_id"], link["asset_id"]])
        return self.cursor.fetchone() is not None

    def report_since(self, rows: list[Archived]) -> None:
        for row in rows:
            self.since.append([row.table, row.row_id, row.action, row.before.get("asset_id")])
            self.counts["writes_since_kept"] += 1

    # -- the group ------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        self.cursor.execute(sql.SQL("SELECT 1 FROM {a} WHERE id = %s FOR UPDATE").format(
            a=sql.Identifier(ASSETS)), [self.survivor])  # no write lands on it meanwhile
        steps: Plan = plan(self.archived())
        self.restore_assets(steps.assets)
        self.split_back(steps.splits)
        self.move_back(steps.move_back)
        self.insert_again(steps.insert_again)
        self.report_since(steps.written_since)
        self.cursor.execute(
            sql.SQL("UPDATE {archive} SET undone_at = now() WHERE group_id = %s "
                    "AND undone_at IS NULL").format(archive=sql.Identifier(ARCHIVE)),
            [self.group_id])
        self.cursor.execute(
            sql.SQL("UPDATE {g} SET merged_at = NULL, survivor_id = NULL, undo_requested_at = NULL, "
                    "undone_at = now(), undo_report = %s::jsonb WHERE id = %s").format(
                g=sql.Identifier(GROUPS)),
            [json.dumps({"survivor": self.survivor, "counts": dict(self.counts),
                         "kept": self.kept, "written_since": self.since}), self.group_id],
        )
        self.counts["groups_undone"] += 1
        return dict(self.counts)


def unique_constraint_stands(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s AND relkind = 'i' "
                   "AND relnamespace = current_schema()::regnamespace", [UNIQUE_INDEX])
    return cursor.fetchone() is not None


@register
class TickerDedupUndo(UndoJob):
    name = "ticker_dedup_undo"
    undoes = "ticker_dedup"
    table = GROUPS
    description = "put merged duplicate groups back from their before-images (backfill undo)"
    watched_tables = (ASSETS, *REFERENCING_TABLES)
    # One group per batch: each group is put back in a transaction of its own.
    defaults = {"batch_size": 1, "min_batch_size": 1, "max_batch_size": 1}

    def refusal(self, cursor) -> str:
        cursor.execute("SELECT to_regclass(%s) IS NULL", [GROUPS])
        if cursor.fetchone()[0]:
            return "nothing was merged: assets 0011 and 0012 are not applied"
        return REFUSED if unique_constraint_stands(cursor) else ""

    def select(self, cursor, groups: Sequence[str]) -> int:
        cursor.execute(sql.SQL("UPDATE {g} SET undo_requested_at = NULL "
                               "WHERE undo_requested_at IS NOT NULL").format(g=sql.Identifier(GROUPS)))
        ids = self.named(cursor, groups) if groups else None
        cursor.execute(
            sql.SQL("UPDATE {g} SET undo_requested_at = now() WHERE merged_at IS NOT NULL "
                    "AND (%(all)s OR id = ANY(%(ids)s))").format(g=sql.Identifier(GROUPS)),
            {"all": ids is None, "ids": ids or []},
        )
        return cursor.rowcount

    def named(self, cursor, groups: Sequence[str]) -> list[int]:
        ids = []
        for name in groups:
            ticker, sep, mic = name.rpartition(":")
            cursor.execute(
                sql.SQL("SELECT g.id FROM {g} g JOIN {e} e ON e.id = g.exchange_id "
                        "WHERE g.ticker = %s AND e.mic = %s").format(
                    g=sql.Identifier(GROUPS), e=sql.Identifier(EXCHANGES)), [ticker, mic])
            row = cursor.fetchone()
            if not sep or row is None:
                raise InvalidInput(f"no duplicate group {name!r}: name one as TICKER:MIC (the "
                                   "exchange's MIC), e.g. --group ACME:XNYS")
            ids.append(row[0])
        return ids

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        if unique_constraint_stands(cursor):
            raise RuntimeError(REFUSED)
        cursor.execute(
            sql.SQL("SELECT id, survivor_id, merged_at FROM {g} WHERE id > %s AND id <= %s "
                    "AND undo_requested_at IS NOT NULL AND merged_at IS NOT NULL "
                    "ORDER BY id FOR UPDATE").format(g=sql.Identifier(GROUPS)),
            [start, end],
        )
        totals: dict[str, int] = defaultdict(int)
        for group_id, survivor, merged_at in cursor.fetchall():
            for name, value in GroupUndo(cursor, group_id, survivor, merged_at).run().items():
                totals[name] += value
        return BatchResult(rows=totals.get("groups_undone", 0), counts=dict(totals))

    def count_remaining(self, cursor) -> int:
        cursor.execute(sql.SQL("SELECT count(*) FROM {g} WHERE undo_requested_at IS NOT NULL "
                               "AND merged_at IS NOT NULL").format(g=sql.Identifier(GROUPS)))
        return cursor.fetchone()[0]

    def estimate_total(self, cursor, min_key: int | None, max_key: int | None) -> int:
        return self.count_remaining(cursor)

    def findings(self, cursor, since: datetime) -> list[str]:
        cursor.execute(sql.SQL(FINDINGS).format(groups=sql.Identifier(GROUPS),
                                                exchanges=sql.Identifier(EXCHANGES)), [since])
        lines = []
        for group, report in cursor.fetchall():
            report = report if isinstance(report, dict) else json.loads(report)
            for table, row_id, why in report["kept"]:
                lines.append(f"{group}: {table} {row_id} left as it is: {why}")
            for table, row_id, action, named in report["written_since"]:
                what = SINCE.get((table == ASSETS, action), "was written since the merge")
                lines.append(f"{group}: {table} {row_id} {what.replace('{named}', str(named))}")
        return lines
