"""Sectors, the top level of an asset's classification; soft-deleted since 0004."""

from django.db import models

from utils.models import SoftDeleteModel, TimeStampedModel


class Sector(TimeStampedModel, SoftDeleteModel):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name
