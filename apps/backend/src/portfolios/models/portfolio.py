"""A user's portfolio, keyed by a random UUID."""

from django.conf import settings
from django.db import models

from assets.models import Currency
from utils.models import SoftDeleteModel, TimeStampedModel, UUIDModel

from .benchmark import Benchmark


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
