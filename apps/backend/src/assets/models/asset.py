"""An instrument listed on an exchange: one per (ticker, exchange) since 0014, once
`ticker_dedup` had merged the legacy duplicates."""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel

from .reference import Country, Currency, Exchange, Industry, Sector


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
