"""Index for an asset's latest prices first (charts and last-close lookups).

Built concurrently (writes continue), alone in its migration, and safe to re-run: an INVALID
index left by a failed build is dropped and rebuilt. The name is longer than Django's 30
characters for `Meta.indexes`, so the index lives in the database only.
"""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0005_soft_delete_industry")]
    operations = [
        CreateIndexConcurrently(
            name="idx_assets_priceshistoric_asset_timestamp",
            table="assets_assetpriceshistoric",
            columns=['asset_id', 'timestamp DESC'],
        ),
    ]
