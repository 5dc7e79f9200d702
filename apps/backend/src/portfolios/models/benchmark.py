"""An index a portfolio is measured against, tracked through an asset; soft-deleted since 0002."""

from django.db import models

from assets.models import Asset
from utils.models import SoftDeleteModel, TimeStampedModel


class Benchmark(TimeStampedModel, SoftDeleteModel):
    name = models.CharField(max_length=200)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="benchmarks")

    def __str__(self) -> str:
        return self.name
