"""Exchanges, by market identifier code (ISO 10383)."""

from django.db import models

from utils.models import TimeStampedModel

from .country import Country
from .currency import Currency


class Exchange(TimeStampedModel):
    mic = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=200)
    country = models.ForeignKey(Country, on_delete=models.PROTECT, related_name="exchanges")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="exchanges")

    def __str__(self) -> str:
        return self.mic
