"""Drop the deprecated text columns, only once `legacy_columns` verified every value archived.

Dropping a column is catalog-only; the brief ACCESS EXCLUSIVE runs under lock_timeout.
"""

from django.db import migrations

from migrations_worker.ddl import SafeSQL
from migrations_worker.operations import RequireJob


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
