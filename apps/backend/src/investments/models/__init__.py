"""What users follow and are told about.

The legacy defects and how their migrations repair them:
- NewsArticle and Alert had no soft delete (0002, 0003);
- `investments_watchlist` lacked the (user_id, asset_id) index (0004, database only: its name is
  too long for Django's `Meta.indexes`);
- Alert sat on an integer key: expand (0005: a uuid column, references synced by a trigger),
  the `alerts_uuid` backfill, contract (0006-0010: NOT NULL without a scan, unique indexes, the
  primary key moved to the uuid, foreign keys re-validated). The old integer stays as
  `legacy_id` so nothing that referred to it is lost.

One module per model or close family; this package registers them all.
"""

# Imported in the order the single module defined them, so the app registry (and the content
# types and permissions `migrate` creates from it) lists the models as it did.
from .watchlist import Watchlist  # noqa: I001
from .news import NewsArticle
from .alert import Alert, AlertTrigger

__all__ = ["Alert", "AlertTrigger", "NewsArticle", "Watchlist"]
