"""List the duplicate groups and enqueue the `ticker_dedup` job that merges them, once the
deprecated text of every asset is archived (the merge removes assets).

The listing reads `assets_asset` once (ACCESS SHARE only: writers carry on) and writes one row
per group; the guard of 0010 means no new group can appear after it. Re-runnable: groups
already listed are skipped.
"""

from django.db import migrations

from migrations_worker.operations import EnqueueJob, RequireJob, SafeSQL


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("assets", "0011_merge_archive_tables"),
        ("migrations_worker", "0001_initial"),
        ("portfolios", "0003_holding_portfolio_asset_index"),
        ("investments", "0004_watchlist_user_asset_index"),
    ]
    operations = [
        # Merging removes assets: their deprecated text must be in its archive first.
        RequireJob("legacy_columns"),
        SafeSQL(
            steps=[
                [
                    "INSERT INTO assets_duplicatetickergroup (ticker, exchange_id, member_count) "
                    "SELECT ticker, exchange_id, count(*) FROM assets_asset "
                    "GROUP BY ticker, exchange_id HAVING count(*) > 1 ORDER BY min(id) "
                    "ON CONFLICT (ticker, exchange_id) DO NOTHING"
                ]
            ],
            reverse_steps=[],
            long_running=True,
            description="List duplicate (ticker, exchange) groups",
        ),
        EnqueueJob("ticker_dedup"),
    ]
