"""Countries, by ISO 3166 code; soft-deleted since 0002."""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel


class Country(TimeStampedModel, SoftDeleteModel):
    iso_code = models.CharField(max_length=2, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        verbose_name_plural = "countries"

    def __str__(self) -> str:
        return self.name
