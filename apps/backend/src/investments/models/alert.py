"""Price alerts and the history of their firing: the alert moved onto a UUID key online
(0005-0010), and its trigger rows keep both references in step."""

import uuid

from django.conf import settings
from django.db import models

from assets.models import Asset
from utils.models import SoftDeleteModel, UUIDModel

# The legacy integer key of an alert is an identity column: Django sends DEFAULT for it and
# PostgreSQL numbers the row (the expression documents that; it is never sent).
LEGACY_ID_DEFAULT = models.Func(
    models.Value("investments_alert_id_seq"), function="nextval", output_field=models.BigIntegerField()
)


class Alert(UUIDModel, SoftDeleteModel):
    """A price alert, keyed by a random UUID (stored in the column `uuid`).

    The integer key it had before (migrations 0005-0010 moved the primary key online) stays as
    `legacy_id` on the column `id`: unique, still numbered by the column's identity sequence, so
    code and links that know an alert by its number keep working.
    """

    class Condition(models.TextChoices):
        ABOVE = "above", "Price above"
        BELOW = "below", "Price below"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, db_column="uuid")
    legacy_id = models.BigIntegerField(
        db_column="id", unique=True, editable=False, db_default=LEGACY_ID_DEFAULT
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="alerts")
    condition = models.CharField(max_length=10, choices=Condition.choices)
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.asset_id} {self.condition} {self.threshold}"


class AlertTrigger(models.Model):
    """Each time an alert fired: the history that must survive the alert's key change.

    `alert` refers to the alert's UUID (column `alert_uuid`); the legacy integer reference
    (column `alert_id`) is kept for code that still knows alerts by number. A database trigger
    keeps the two in step whichever one a writer sets, so leave `legacy_alert_id` unset.
    """

    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, related_name="triggers", db_column="alert_uuid"
    )
    # Filled by the sync trigger. db_default: Django writes DEFAULT and reads the value back.
    legacy_alert_id = models.BigIntegerField(
        db_column="alert_id", null=True, editable=False, db_index=True, db_default=None
    )
    triggered_at = models.DateTimeField()
    price = models.DecimalField(max_digits=20, decimal_places=6)
    notified = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.alert_id} at {self.triggered_at}"
