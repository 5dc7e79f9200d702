"""Soft delete on Country: catalog-only columns (a constant default needs no rewrite), one
table per transaction, under lock_timeout with retries. Older code that inserts without the
columns keeps working: the database supplies is_deleted = false. Taken back only while no row is
soft-deleted: dropping `is_deleted` would bring such a row back."""

from django.db import migrations, models

from migrations_worker.operations import RefuseReverseWhile, Safely, Stage


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
        RefuseReverseWhile(
            "SELECT count(*) FROM assets_country WHERE is_deleted",
            "soft-deleted row(s) in assets_country: dropping is_deleted (assets 0002) would bring them back. "
            "Restore them (Country.all_objects...restore()) or delete them for good "
            "(hard_delete()) first, then migrate back again.",
        ),
    ]
