"""Index for a portfolio's position in an asset (the lookup every valuation makes).

Built concurrently (writes continue), alone in its migration, and safe to re-run: an INVALID
index left by a failed build is dropped and rebuilt. The name is longer than Django's 30
characters for `Meta.indexes`, so the index lives in the database only.
"""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("portfolios", "0002_soft_delete_benchmark")]
    operations = [
        CreateIndexConcurrently(
            name="idx_portfolios_holding_portfolio_asset",
            table="portfolios_holding",
            columns=['portfolio_id', 'asset_id'],
        ),
    ]
