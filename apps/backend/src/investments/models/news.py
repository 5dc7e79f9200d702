"""News articles and the assets they mention; soft-deleted since 0002."""

from django.db import models

from assets.models import Asset
from utils.models import SoftDeleteModel, TimeStampedModel


class NewsArticle(TimeStampedModel, SoftDeleteModel):
    title = models.CharField(max_length=300)
    url = models.URLField(max_length=500)
    source = models.CharField(max_length=100)
    published_at = models.DateTimeField()
    assets = models.ManyToManyField(Asset, related_name="news", blank=True)

    def __str__(self) -> str:
        return self.title
