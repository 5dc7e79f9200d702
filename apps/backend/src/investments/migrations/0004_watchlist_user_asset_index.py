"""Index for whether an asset is on a user's watchlist.

Built concurrently (writes continue), alone in its migration, and safe to re-run: an INVALID
index left by a failed build is dropped and rebuilt. The name is longer than Django's 30
characters for `Meta.indexes`, so the index lives in the database only.
"""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("investments", "0003_soft_delete_alert")]
    operations = [
        CreateIndexConcurrently(
            name="idx_investments_watchlist_user_asset",
            table="investments_watchlist",
            columns=['user_id', 'asset_id'],
        ),
    ]
