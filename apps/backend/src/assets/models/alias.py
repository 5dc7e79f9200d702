"""The ids a duplicate merge removed, each the name of its survivor for good."""

from django.db import models

from .archive import DuplicateTickerGroup


class AssetAlias(models.Model):
    """A removed duplicate's id and the asset it was merged into, written by `ticker_dedup` in
    the transaction that removes it. Writes that name the old id land on the survivor (the
    redirect triggers of migration 0012, for either release and any client holding an old id),
    and `Asset.objects.resolve(old_id)` finds the survivor."""

    asset_id = models.BigIntegerField(primary_key=True)
    survivor_id = models.BigIntegerField(db_index=True)
    group = models.ForeignKey(DuplicateTickerGroup, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "asset aliases"

    def __str__(self) -> str:
        return f"{self.asset_id} -> {self.survivor_id}"
