"""Alert becomes a UUIDModel, step 5: (alert_uuid) on investments_alerttrigger, concurrently.

The index of the new foreign key: joins from alerts to their triggers, and the check a deleted
alert makes for triggers that still refer to it. Re-runnable like every CreateIndexConcurrently.
"""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("investments", "0008_alert_legacy_id_unique_index")]
    operations = [
        CreateIndexConcurrently(
            name="investments_alerttrigger_alert_uuid_idx",
            table="investments_alerttrigger",
            columns=["alert_uuid"],
        ),
    ]
