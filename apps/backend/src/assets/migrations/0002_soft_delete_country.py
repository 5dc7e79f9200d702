"""Soft delete on Country: catalog-only columns (a constant default needs no rewrite), one
table per transaction, under lock_timeout with retries. Older code that inserts without the
columns keeps working: the database supplies is_deleted = false."""

from django.db import migrations, models

from migrations_worker.operations import Safely, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0001_initial")]
    operations = [
        Safely(
            migrations.AddField(
                model_name="country",
                name="is_deleted",
                field=models.BooleanField(db_default=False, default=False),
            ),
            migrations.AddField(
                model_name="country",
                name="deleted_at",
                field=models.DateTimeField(blank=True, null=True),
            ),
        ),
    ]
