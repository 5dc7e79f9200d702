"""Market reference data, the assets traded on it, and the archives of the online fixes.

The legacy defects and how their migrations repair them:
- `Asset.sector` / `Asset.industry` were deprecated free text, superseded by `sector_ref` /
  `industry_ref`: the fields left the model first (0008), the `legacy_columns` job archived every
  value into `AssetLegacyText`, then a gated migration dropped the columns (0013);
- duplicate (ticker, exchange) assets: new ones refused by a trigger (0010), existing groups
  merged by the `ticker_dedup` job with before-images in `AssetMergeArchive`, each removed id an
  `AssetAlias` of its survivor (writes naming it land on the survivor), then UNIQUE (0014);
- soft delete on Country, Currency, Sector, Industry (0002-0005);
- the (asset_id, timestamp DESC) price index (0006, database only: its name is too long for
  Django's `Meta.indexes`).

One module per model or close family; this package registers them all (Django finds an app's
models by importing `<app>.models`).
"""

# Imported in the order the single module defined them, so the app registry (and the content
# types and permissions `migrate` creates from it) lists the models as it did.
from .reference import Country, Currency, Exchange, Industry, Sector  # noqa: I001
from .asset import Asset
from .prices import AssetPricesHistoric
from .archive import AssetLegacyText, AssetMergeArchive, DuplicateTickerGroup
from .alias import AssetAlias

__all__ = [
    "Asset",
    "AssetAlias",
    "AssetLegacyText",
    "AssetMergeArchive",
    "AssetPricesHistoric",
    "Country",
    "Currency",
    "DuplicateTickerGroup",
    "Exchange",
    "Industry",
    "Sector",
]
