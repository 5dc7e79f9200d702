"""Soft delete on Sector: catalog-only columns (a constant default needs no rewrite), one
table per transaction, under lock_timeout with retries. Older code that inserts without the
columns keeps working: the database supplies is_deleted = false. Taken back only while no row is
soft-deleted: dropping `is_deleted` would bring such a row back."""

from django.db import migrations, models

from migrations_worker.operations import RefuseReverseWhile, Safely, Stage


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
        RefuseReverseWhile(
            "SELECT count(*) FROM assets_sector WHERE is_deleted",
            "soft-deleted row(s) in assets_sector: dropping is_deleted (assets 0004) would bring them back. "
            "Restore them (Sector.all_objects...restore()) or delete them for good "
            "(hard_delete()) first, then migrate back again.",
        ),
    ]
