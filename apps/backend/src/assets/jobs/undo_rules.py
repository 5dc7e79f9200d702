"""The decisions of putting a duplicate-ticker merge back, as plain functions over plain values.

`ticker_dedup_undo` reads a group's archive rows and the rows as they are now; these say which
archive row asks for what (a removed asset to restore, a position to split back, a row to move
back, a row to insert again, a write since the merge to report) and whether a row still holds
what the merge left, so that a row changed since is reported and never overwritten. They are
apart from the SQL so that `tests/unit` pins every rule without a database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from .merge_rules import Position, merged_position

ASSETS = "assets_asset"
HOLDINGS = "portfolios_holding"


@dataclass(frozen=True)
class Archived:
    """A row of `assets_assetmergearchive`: the before-image of `row_id` in `table`.

    `by_merge`: written by the merge itself (in its transaction), as opposed to by the redirect
    triggers afterwards, for a write that named a removed asset (`redirected`) or a row such a
    write replaced (`removed`)."""

    id: int
    table: str
    row_id: int
    action: str
    before: dict
    by_merge: bool


@dataclass(frozen=True)
class Split:
    """A live position the merge summed into one holding (`keeper`, archived `changed`), from
    the holdings it removed (`summed`); a lone holding it only moved has none."""

    keeper: Archived
    summed: tuple[Archived, ...] = ()

    def left_by_merge(self) -> Position:
        """The quantity and cost the merge wrote on the keeper (merge_rules decides them)."""
        positions = [position_of(a.before) for a in (self.keeper, *self.summed)]
        return merged_position(positions, position_of(self.keeper.before).average_cost)


@dataclass
class Plan:
    """What undoing one group's merge does, archive row by archive row."""

    assets: list[Archived] = field(default_factory=list)  # removed members: restored with their ids
    splits: list[Split] = field(default_factory=list)  # summed positions: split back
    move_back: list[Archived] = field(default_factory=list)  # re-pointed rows: back to their asset
    insert_again: list[Archived] = field(default_factory=list)  # rows merged away: back in
    written_since: list[Archived] = field(default_factory=list)  # reported, left where they are


def position_of(row: dict) -> Position:
    return Position(Decimal(row["quantity"]), Decimal(row["average_cost"]))


def plan(rows: Sequence[Archived]) -> Plan:
    """Sort a group's archive rows (of one merge: those no undo consumed yet) into what the undo
    does with each.

    - the merge removed an asset: restore it;
    - it changed a live holding: that holding kept the portfolio's position, summed from the live
      holdings of the same portfolio it removed: split it back;
    - it changed any other row (re-pointed it, a soft-deleted holding included): move it back;
    - it removed any other row (one per key): insert it again;
    - the redirect triggers wrote it after the merge: a write since the merge, reported and left
      where it is (a `redirected` row is on the survivor; a `removed` one was replaced by it).
    """
    result = Plan()
    keepers: dict[object, Archived] = {}
    summed: dict[object, list[Archived]] = defaultdict(list)
    for row in rows:
        if not row.by_merge:
            result.written_since.append(row)
        elif row.table == ASSETS:
            result.assets.append(row)
        elif row.table == HOLDINGS and not row.before.get("is_deleted"):
            portfolio = row.before["portfolio_id"]
            if row.action == "changed":
                keepers[portfolio] = row
            else:
                summed[portfolio].append(row)
        elif row.action == "changed":
            result.move_back.append(row)
        else:
            result.insert_again.append(row)
    for portfolio, keeper in keepers.items():
        result.splits.append(Split(keeper, tuple(summed.pop(portfolio, ()))))
    for rows_left in summed.values():  # removed with no keeper archived: not the merge's rule
        result.insert_again.extend(rows_left)
    return result


def still_as_merged(current: dict | None, survivor: int) -> str:
    """Why a row the merge re-pointed no longer holds what the merge left ("" if it does)."""
    if current is None:
        return "deleted since the merge"
    if current["asset_id"] != survivor:
        return f"names asset {current['asset_id']} since the merge, not the survivor {survivor}"
    return ""


def position_as_merged(current: dict | None, split: Split, survivor: int) -> str:
    """Why a summed holding no longer holds what the merge left ("" if it still does): another
    asset, another quantity or cost (bought, sold, or a write folded into it), deleted."""
    moved = still_as_merged(current, survivor)
    if moved:
        return moved
    merged = split.left_by_merge()
    now = position_of(current)
    if current.get("is_deleted"):
        return "soft-deleted since the merge"
    if current["portfolio_id"] != split.keeper.before["portfolio_id"]:
        return "moved to another portfolio since the merge"
    if now != merged:
        return (f"holds {now.quantity.normalize():f} at {now.average_cost.normalize():f} since the "
                f"merge, which left {merged.quantity.normalize():f} at "
                f"{merged.average_cost.normalize():f}")
    return ""
