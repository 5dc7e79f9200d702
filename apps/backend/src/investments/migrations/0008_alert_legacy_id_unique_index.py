"""Alert becomes a UUIDModel, step 4: UNIQUE (id) on investments_alert, built concurrently.

When the primary key moves to uuid (0010), this index becomes the unique constraint that keeps
the legacy integer unique, indexed, and referable by AlertTrigger's legacy `alert_id`.
Re-runnable like every CreateIndexConcurrently.
"""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage

LINT_EXCEPTIONS = {
    "contract-operation-in-pre-deploy":
    "the integer id is the old primary key, numbered by its identity sequence: the previous "
    "release cannot write a duplicate (it is unique already; the index only lets the key move)",
}


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("investments", "0007_alert_uuid_unique_index")]
    operations = [
        CreateIndexConcurrently(
            name="investments_alert_legacy_id_uniq",
            table="investments_alert",
            columns=["id"],
            unique=True,
        ),
    ]
