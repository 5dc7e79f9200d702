"""Soft delete on Sector: catalog-only columns (a constant default needs no rewrite), one
table per transaction, under lock_timeout with retries. Older code that inserts without the
columns keeps working: the database supplies is_deleted = false."""

from django.db import migrations, models

from migrations_worker.operations import Safely, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0003_soft_delete_currency")]
    operations = [
        Safely(
            migrations.AddField(
                model_name="sector",
                name="is_deleted",
                field=models.BooleanField(db_default=False, default=False),
            ),
            migrations.AddField(
                model_name="sector",
                name="deleted_at",
                field=models.DateTimeField(blank=True, null=True),
            ),
        ),
    ]
