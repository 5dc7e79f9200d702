"""Market reference data and the assets traded on it, in their legacy shape.

Legacy defects kept on purpose (the online migrations repair them):
- `Asset.sector` / `Asset.industry` are deprecated free-text columns, superseded by
  `sector_ref` / `industry_ref`;
- nothing stops two assets with the same (ticker, exchange);
- Country, Currency, Sector and Industry have no soft delete;
- AssetPricesHistoric lacks the (asset_id, timestamp DESC) index.
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
    # Deprecated free text, superseded by sector_ref / industry_ref.
    sector = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    industry = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    sector_ref = models.ForeignKey(
        Sector, on_delete=models.PROTECT, null=True, blank=True, related_name="assets"
    )
    industry_ref = models.ForeignKey(
        Industry, on_delete=models.PROTECT, null=True, blank=True, related_name="assets"
    )

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
