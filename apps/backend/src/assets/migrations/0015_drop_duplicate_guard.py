"""The constraint now refuses duplicates: retire the guard trigger and its lookup index."""

from django.db import migrations

from migrations_worker.operations import SafeSQL

LINT_EXCEPTIONS = {
    "ban-drop-function": "the trigger that called it is dropped first; the UNIQUE constraint of "
    "0014 refuses duplicates now",
}


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("assets", "0014_asset_ticker_exchange_unique")]
    operations = [
        SafeSQL(
            steps=[
                ["DROP TRIGGER IF EXISTS assets_asset_refuse_duplicate ON assets_asset"],
                ["DROP FUNCTION IF EXISTS assets_asset_refuse_duplicate()"],
                ["DROP INDEX CONCURRENTLY IF EXISTS assets_asset_ticker_exchange_idx"],
            ],
            long_running=True,
            description="Drop the duplicate guard and its lookup index",
        ),
    ]
