"""Drop the deprecated text columns, only once `legacy_columns` verified every value archived.

Dropping a column is catalog-only; the brief ACCESS EXCLUSIVE runs under lock_timeout.
"""

from django.db import migrations

from migrations_worker.operations import RequireJob, SafeSQL

LINT_EXCEPTIONS = {
    "ban-drop-column": "the fields left the model state in 0008, so running code no longer reads "
    "them, and RequireJob above proves every value is archived before the drop",
}


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("assets", "0012_enqueue_ticker_dedup")]
    operations = [
        RequireJob("legacy_columns"),
        SafeSQL(
            steps=[
                [
                    "ALTER TABLE assets_asset DROP COLUMN IF EXISTS sector, "
                    "DROP COLUMN IF EXISTS industry"
                ]
            ],
            description="Drop assets_asset.sector and .industry",
        ),
    ]
