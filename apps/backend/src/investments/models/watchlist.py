"""The assets a user follows. Its (user_id, asset_id) index is created by 0004 in the database
only: the name is too long for Django's `Meta.indexes`."""

from django.conf import settings
from django.db import models

from assets.models import Asset
from utils.models import SoftDeleteModel, TimeStampedModel


class Watchlist(TimeStampedModel, SoftDeleteModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlist"
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="watchers")
    notes = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.user_id} watches {self.asset_id}"
