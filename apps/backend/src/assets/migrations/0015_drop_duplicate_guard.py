"""Post-deploy: the constraint now refuses duplicates: retire the guard trigger, its lookup
index, and the trigger that merged a re-saved merged-away asset again (from here UNIQUE refuses
such a row before any trigger could: only a model loaded before the merge, in the previous
release that no longer runs, would send it). The aliases and the redirect of rows naming a
merged-away asset stay (see 0012)."""

from django.db import migrations

from migrations_worker.operations import SafeSQL, Stage

LINT_EXCEPTIONS = {
    "ban-drop-function": "the triggers that called them are dropped first; the UNIQUE constraint "
    "of 0014 refuses duplicates now",
}


class Migration(migrations.Migration):
    stage = Stage.POST
    atomic = False
    dependencies = [("assets", "0014_asset_ticker_exchange_unique")]
    operations = [
        SafeSQL(
            steps=[
                ["DROP TRIGGER IF EXISTS assets_asset_refuse_duplicate ON assets_asset"],
                ["DROP TRIGGER IF EXISTS assets_asset_merge_again ON assets_asset"],
                ["DROP FUNCTION IF EXISTS assets_asset_refuse_duplicate()"],
                ["DROP FUNCTION IF EXISTS assets_asset_merge_again()"],
                ["DROP FUNCTION IF EXISTS assets_asset_merged_away(bigint)"],
                ["DROP INDEX CONCURRENTLY IF EXISTS assets_asset_ticker_exchange_idx"],
            ],
            long_running=True,
            description="Drop the duplicate guard, its lookup index and the re-merge trigger",
        ),
    ]
