"""Portfolios and their positions, in their legacy shape.

Legacy defects kept on purpose: Benchmark has no soft delete; `portfolios_holding` is meant to
hold one position per (portfolio, asset) but nothing enforces it, and it lacks the
(portfolio_id, asset_id) index.
"""

from django.conf import settings
from django.db import models

from assets.models import Asset, Currency
from utils.models import SoftDeleteModel, TimeStampedModel, UUIDModel


class Benchmark(TimeStampedModel, SoftDeleteModel):
    name = models.CharField(max_length=200)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="benchmarks")

    def __str__(self) -> str:
        return self.name


class Portfolio(UUIDModel, TimeStampedModel, SoftDeleteModel):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios"
    )
    name = models.CharField(max_length=200)
    base_currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    benchmark = models.ForeignKey(
        Benchmark, on_delete=models.SET_NULL, null=True, blank=True, related_name="portfolios"
    )

    def __str__(self) -> str:
        return self.name


class Holding(TimeStampedModel, SoftDeleteModel):
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="holdings")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="holdings")
    quantity = models.DecimalField(max_digits=24, decimal_places=8)
    average_cost = models.DecimalField(max_digits=24, decimal_places=8)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.asset_id}"
