"""The data jobs of the schema fixes, one module each; importing registers them."""

from . import legacy_columns, ticker_dedup  # noqa: F401
