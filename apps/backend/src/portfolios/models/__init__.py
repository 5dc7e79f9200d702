"""Portfolios and their positions.

The legacy defects and how their migrations repair them:
- Benchmark had no soft delete (0002);
- `portfolios_holding` lacked the (portfolio_id, asset_id) index (0003, database only: its name
  is too long for Django's `Meta.indexes`).

A holding is meant to be one position per (portfolio, asset), but nothing enforces it; the
`ticker_dedup` job keeps it so when it merges duplicate assets (quantities summed, cost weighted).

One module per model; this package registers them all.
"""

# Imported in the order the single module defined them, so the app registry (and the content
# types and permissions `migrate` creates from it) lists the models as it did.
from .benchmark import Benchmark  # noqa: I001
from .portfolio import Portfolio
from .holding import Holding

__all__ = ["Benchmark", "Holding", "Portfolio"]
