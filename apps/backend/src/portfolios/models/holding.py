"""A portfolio's position in an asset. Its (portfolio_id, asset_id) index is created by 0003 in
the database only: the name is too long for Django's `Meta.indexes`."""

from django.db import models

from assets.models import Asset
from utils.models import SoftDeleteModel, TimeStampedModel

from .portfolio import Portfolio


class Holding(TimeStampedModel, SoftDeleteModel):
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="holdings")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="holdings")
    quantity = models.DecimalField(max_digits=24, decimal_places=8)
    average_cost = models.DecimalField(max_digits=24, decimal_places=8)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.asset_id}"
