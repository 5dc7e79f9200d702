"""Post-deploy: the constraint now refuses duplicates: retire the guard trigger, its lookup
index, and the trigger that merged a re-saved merged-away asset again (from here UNIQUE refuses
such a row before any trigger could: only a model loaded before the merge, in the previous
release that no longer runs, would send it). The aliases and the redirect of rows naming a
merged-away asset stay (see 0012).

Taken back (`migrate assets 0014`, or 0013 to take UNIQUE back too, as an undo of the merge
needs): the index, the guard and the re-merge trigger come back as 0009, 0010 and 0012 made them.
"""

from importlib import import_module

from django.db import migrations

from migrations_worker.operations import SafeSQL, Stage

# What 0010 and 0012 created, as they wrote it (their modules' names start with a digit).
GUARD = import_module("assets.migrations.0010_stop_new_duplicate_tickers")
REDIRECT = import_module("assets.migrations.0012_enqueue_ticker_dedup")

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
            reverse_steps=[
                # Dropped first, so that a rerun after a failed build never keeps an INVALID one.
                ["DROP INDEX CONCURRENTLY IF EXISTS assets_asset_ticker_exchange_idx"],
                ["CREATE INDEX CONCURRENTLY assets_asset_ticker_exchange_idx "
                 "ON assets_asset (ticker, exchange_id)"],
                [REDIRECT.MERGED_AWAY],
                [REDIRECT.MERGE_AGAIN],
                [GUARD.FUNCTION],
                [
                    "DROP TRIGGER IF EXISTS assets_asset_merge_again ON assets_asset",
                    "CREATE TRIGGER assets_asset_merge_again AFTER INSERT ON assets_asset "
                    "FOR EACH ROW WHEN (assets_asset_merged_away(NEW.id)) "
                    "EXECUTE FUNCTION assets_asset_merge_again()",
                ],
                [
                    "DROP TRIGGER IF EXISTS assets_asset_refuse_duplicate ON assets_asset",
                    "CREATE TRIGGER assets_asset_refuse_duplicate "
                    "BEFORE INSERT OR UPDATE OF ticker, exchange_id ON assets_asset "
                    "FOR EACH ROW EXECUTE FUNCTION assets_asset_refuse_duplicate()",
                ],
            ],
            long_running=True,
            description="Drop the duplicate guard, its lookup index and the re-merge trigger",
        ),
    ]
