"""Soft delete on Industry: catalog-only columns (a constant default needs no rewrite), one
table per transaction, under lock_timeout with retries. Older code that inserts without the
columns keeps working: the database supplies is_deleted = false."""

from django.db import migrations, models

from migrations_worker.operations import Safely, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0004_soft_delete_sector")]
    operations = [
        Safely(
            migrations.AddField(
                model_name="industry",
                name="is_deleted",
                field=models.BooleanField(db_default=False, default=False),
            ),
            migrations.AddField(
                model_name="industry",
                name="deleted_at",
                field=models.DateTimeField(blank=True, null=True),
            ),
        ),
    ]
