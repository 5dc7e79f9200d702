"""An asset's price history. Its (asset_id, timestamp DESC) index is created by 0006 in the
database only: the name is too long for Django's `Meta.indexes`."""

from django.db import models

from .asset import Asset


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
