"""The decisions of a duplicate-ticker merge, as plain functions over plain values.

`ticker_dedup` reads and locks the rows, asks these which asset survives, which of several
colliding rows stays, and what a merged position holds and cost, then writes the answers. They
are apart from the SQL so that `tests/unit` pins every rule without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

# Holding.average_cost keeps 8 decimal places; a merged cost is rounded to them before it is
# written, so what the job computes is what the column stores.
COST_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class Member:
    """An asset of a duplicate (ticker, exchange) group."""

    id: int
    is_deleted: bool


@dataclass(frozen=True)
class Claim:
    """A row that collides with others once their assets are one (two holdings of a portfolio,
    two watchlist entries of a user, two prices at a timestamp, two links to an article)."""

    id: int
    asset_id: int
    is_deleted: bool = False


@dataclass(frozen=True)
class Position:
    quantity: Decimal
    average_cost: Decimal


def choose_survivor(members: Sequence[Member]) -> int:
    """The asset a group merges into: the lowest-id member that is not soft-deleted, so live data
    never ends up on a deleted asset; if every member is soft-deleted, the lowest id (which stays
    soft-deleted). Deterministic, so a redone batch picks the same survivor."""
    alive = [m for m in members if not m.is_deleted]
    return min(m.id for m in alive or members)


def choose_keeper(claims: Sequence[Claim], survivor: int) -> Claim:
    """The one of colliding rows that stays: a live row before a soft-deleted one (what a user
    sees survives), then the survivor's own row (it already points at the right asset, so it
    needs no change), then the lowest id."""
    return min(claims, key=lambda c: (c.is_deleted, c.asset_id != survivor, c.id))


def merged_position(positions: Sequence[Position], keeper_cost: Decimal) -> Position:
    """One position for what several held: the quantities summed and the average cost weighted by
    quantity, so the position keeps its total cost (rounded to 8 places, ties to even: Python's
    default). A total quantity of zero weights nothing, so it keeps the keeper's cost."""
    quantity = sum((p.quantity for p in positions), Decimal(0))
    if not quantity:
        return Position(quantity, keeper_cost)
    cost = sum((p.quantity * p.average_cost for p in positions), Decimal(0)) / quantity
    return Position(quantity, cost.quantize(COST_PLACES))
