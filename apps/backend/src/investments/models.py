"""What users follow and are told about, in its legacy shape.

Legacy defects kept on purpose: NewsArticle and Alert have no soft delete; Alert sits on an
integer key instead of `UUIDModel`; `investments_watchlist` is meant to hold one entry per
(user, asset) but nothing enforces it, and it lacks the (user_id, asset_id) index.
"""

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


class NewsArticle(TimeStampedModel, SoftDeleteModel):
    title = models.CharField(max_length=300)
    url = models.URLField(max_length=500)
    source = models.CharField(max_length=100)
    published_at = models.DateTimeField()
    assets = models.ManyToManyField(Asset, related_name="news", blank=True)

    def __str__(self) -> str:
        return self.title


class Alert(SoftDeleteModel):
    class Condition(models.TextChoices):
        ABOVE = "above", "Price above"
        BELOW = "below", "Price below"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="alerts")
    condition = models.CharField(max_length=10, choices=Condition.choices)
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.asset_id} {self.condition} {self.threshold}"


class AlertTrigger(models.Model):
    """Each time an alert fired: the history that must survive the alert's key change."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="triggers")
    triggered_at = models.DateTimeField()
    price = models.DecimalField(max_digits=20, decimal_places=6)
    notified = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.alert_id} at {self.triggered_at}"
