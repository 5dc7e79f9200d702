"""The data jobs over the assets app's tables; importing registers them (the engine imports each
app's `jobs` module with `autodiscover_modules("jobs")`)."""

from . import legacy_columns, legacy_columns_undo, ticker_dedup, ticker_dedup_undo  # noqa: F401
