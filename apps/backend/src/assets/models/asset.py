"""An instrument listed on an exchange: one per (ticker, exchange) since 0014, once
`ticker_dedup` had merged the legacy duplicates."""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel
from utils.models.base import AllObjectsManager, SoftDeleteManager, SoftDeleteQuerySet

from .alias import AssetAlias
from .reference import Country, Currency, Exchange, Industry, Sector


class AssetQuerySet(SoftDeleteQuerySet):
    def resolve(self, pk: int) -> "Asset":
        """The asset `pk` names, following a duplicate merge: a removed id (a stored link, an
        old API client, a queued task) gives its survivor. DoesNotExist if it names neither."""
        try:
            return self.get(pk=pk)
        except self.model.DoesNotExist:
            survivor = AssetAlias.objects.filter(asset_id=pk).values_list("survivor_id", flat=True)
            if not survivor:
                raise
            return self.get(pk=survivor[0])


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

    objects = SoftDeleteManager.from_queryset(AssetQuerySet)()
    all_objects = AllObjectsManager.from_queryset(AssetQuerySet)()

    class Meta:
        constraints = [
            # Covers soft-deleted rows too: restore an asset rather than create it again.
            models.UniqueConstraint(
                fields=["ticker", "exchange"], name="assets_asset_ticker_exchange_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticker}.{self.exchange_id}"
