"""Market reference data, the assets traded on it, and the archives of the online fixes.

The legacy defects and how their migrations repair them:
- `Asset.sector` / `Asset.industry` were deprecated free text, superseded by `sector_ref` /
  `industry_ref`: the fields left the model first (0008), the `legacy_columns` job archived every
  value into `AssetLegacyText`, then a gated migration dropped the columns (0013);
- duplicate (ticker, exchange) assets: new ones refused by a trigger (0010), existing groups
  merged by the `ticker_dedup` job with before-images in `AssetMergeArchive`, then UNIQUE (0014);
- soft delete on Country, Currency, Sector, Industry (0002-0005);
- the (asset_id, timestamp DESC) price index (0006, database only: its name is too long for
  Django's `Meta.indexes`).
"""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel


class Country(TimeStampedModel, SoftDeleteModel):
    iso_code = models.CharField(max_length=2, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "countries"

    def __str__(self) -> str:
        return self.name


class Currency(TimeStampedModel, SoftDeleteModel):
    code = models.CharField(max_length=3, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "currencies"

    def __str__(self) -> str:
        return self.code


class Sector(TimeStampedModel, SoftDeleteModel):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Industry(TimeStampedModel, SoftDeleteModel):
    sector = models.ForeignKey(Sector, on_delete=models.PROTECT, related_name="industries")
    name = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "industries"
        constraints = [
            models.UniqueConstraint(fields=["sector", "name"], name="assets_industry_sector_name_uniq")
        ]

    def __str__(self) -> str:
        return self.name


class Exchange(TimeStampedModel):
    mic = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=200)
    country = models.ForeignKey(Country, on_delete=models.PROTECT, related_name="exchanges")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="exchanges")

    def __str__(self) -> str:
        return self.mic


class Asset(TimeStampedModel, SoftDeleteModel):
    ticker = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    exchange = models.ForeignKey(Exchange, on_delete=models.PROTECT, related_name="assets")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="assets")
    country = models.ForeignKey(
        Country, on_delete=models.PROTECT, null=True, blank=True, related_name="assets"
    )
    sector_ref = models.ForeignKey(
        Sector, on_delete=models.PROTECT, null=True, blank=True, related_name="assets"
    )
    industry_ref = models.ForeignKey(
        Industry, on_delete=models.PROTECT, null=True, blank=True, related_name="assets"
    )

    class Meta:
        constraints = [
            # Covers soft-deleted rows too: restore an asset rather than create it again.
            models.UniqueConstraint(
                fields=["ticker", "exchange"], name="assets_asset_ticker_exchange_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticker}.{self.exchange_id}"


class AssetPricesHistoric(models.Model):
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="prices")
    timestamp = models.DateTimeField()
    open = models.DecimalField(max_digits=20, decimal_places=6)
    high = models.DecimalField(max_digits=20, decimal_places=6)
    low = models.DecimalField(max_digits=20, decimal_places=6)
    close = models.DecimalField(max_digits=20, decimal_places=6)
    volume = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "asset prices (historic)"

    def __str__(self) -> str:
        return f"{self.asset_id}@{self.timestamp:%Y-%m-%d}"


class DuplicateTickerGroup(models.Model):
    """One (ticker, exchange) that had several assets; the `ticker_dedup` job walks these."""

    ticker = models.CharField(max_length=20)
    exchange_id = models.BigIntegerField()
    member_count = models.PositiveIntegerField()
    survivor_id = models.BigIntegerField(null=True, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ticker", "exchange_id"], name="assets_duplicategroup_key_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticker}.{self.exchange_id} x{self.member_count}"


class AssetMergeArchive(models.Model):
    """The before-image of every row a merge removed or changed, to audit or undo it."""

    class Action(models.TextChoices):
        REMOVED = "removed"
        CHANGED = "changed"

    group = models.ForeignKey(DuplicateTickerGroup, on_delete=models.PROTECT, related_name="+")
    survivor_id = models.BigIntegerField()
    table_name = models.CharField(max_length=63)
    row_key = models.CharField(max_length=64)
    action = models.CharField(max_length=10, choices=Action.choices)
    before = models.JSONField()
    archived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["table_name", "row_key"], name="assets_mergearch_row_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.table_name}#{self.row_key}"


class AssetLegacyText(models.Model):
    """Every non-empty value of the dropped `sector` / `industry` text columns, as it was.

    `asset_id` is a plain number, not a foreign key: the archive outlives merged assets.
    """

    class Outcome(models.TextChoices):
        MATCHED = "matched"
        UNMATCHED = "unmatched"
        AMBIGUOUS = "ambiguous"

    asset_id = models.BigIntegerField(db_index=True)
    field = models.CharField(max_length=10)
    value = models.TextField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    matched_id = models.BigIntegerField(null=True, blank=True)
    archived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["asset_id", "field", "value"], name="assets_legacytext_value_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}.{self.field} = {self.value!r}"
