"""Industries within a sector; soft-deleted since 0005. A name is unique within its sector only,
so the same name under two sectors is why a legacy text value can match ambiguously."""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel

from .sector import Sector


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
