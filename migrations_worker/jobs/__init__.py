"""The data jobs of the schema fixes, one module each; importing registers them."""

from . import alerts_uuid, legacy_columns, ticker_dedup  # noqa: F401
