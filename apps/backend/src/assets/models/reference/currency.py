"""Currencies, by ISO 4217 code; soft-deleted since 0003."""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel


class Currency(TimeStampedModel, SoftDeleteModel):
    code = models.CharField(max_length=3, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "currencies"

    def __str__(self) -> str:
        return self.code
