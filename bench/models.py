"""The alert tables as they are right after investments.0005 (a `uuid` column, still NULL), for
the ORM contenders.

The project's own models have moved on (Alert is keyed by its UUID in the final state), and a
RunPython migration would see the historical model of its own migration; these unmanaged models
are that historical view. Import only after `django.setup()`.
"""

from django.db import models


class LegacyAlert(models.Model):
    id = models.BigAutoField(primary_key=True)
    condition = models.CharField(max_length=10)
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    is_active = models.BooleanField()
    created_at = models.DateTimeField()
    asset_id = models.BigIntegerField()
    user_id = models.IntegerField()
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True)
    uuid = models.UUIDField(null=True)

    class Meta:
        managed = False
        db_table = "investments_alert"
        app_label = "bench"

    def __str__(self) -> str:
        return f"alert {self.pk}"


class LegacyAlertTrigger(models.Model):
    id = models.BigAutoField(primary_key=True)
    alert_id = models.BigIntegerField()
    alert_uuid = models.UUIDField(null=True)
    triggered_at = models.DateTimeField()
    price = models.DecimalField(max_digits=20, decimal_places=6)
    notified = models.BooleanField()

    class Meta:
        managed = False
        db_table = "investments_alerttrigger"
        app_label = "bench"

    def __str__(self) -> str:
        return f"trigger {self.pk} of alert {self.alert_id}"


def copy_uuid_to_triggers(alert_ids: models.QuerySet | list[int] | None = None,
                          upto: int | None = None) -> int:
    """The trigger rows' `alert_uuid` from their alert, with one ORM update (a subquery)."""
    triggers = LegacyAlertTrigger.objects.all()
    if alert_ids is not None:
        triggers = triggers.filter(alert_id__in=alert_ids)
    if upto is not None:
        triggers = triggers.filter(alert_id__lte=upto)
    return triggers.update(alert_uuid=models.Subquery(
        LegacyAlert.objects.filter(id=models.OuterRef("alert_id")).values("uuid")[:1]
    ))
