"""UNIQUE (ticker, exchange), once every duplicate group is merged (gated on `ticker_dedup`).

The index is built concurrently, then the constraint adopts it in a brief catalog-only step;
a plain `ADD CONSTRAINT ... UNIQUE` would build the index under ACCESS EXCLUSIVE.
"""

from django.db import migrations, models

from migrations_worker.operations import CreateIndexConcurrently, RequireJob, SafeSQL, Stage

ATTACH = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'assets_asset_ticker_exchange_unique') THEN
        ALTER TABLE assets_asset ADD CONSTRAINT assets_asset_ticker_exchange_unique
            UNIQUE USING INDEX assets_asset_ticker_exchange_unique;
    END IF;
END
$$
"""


class Migration(migrations.Migration):
    stage = Stage.POST
    atomic = False
    dependencies = [("assets", "0013_drop_legacy_text_columns")]
    operations = [
        RequireJob("ticker_dedup"),
        CreateIndexConcurrently(
            name="assets_asset_ticker_exchange_unique",
            table="assets_asset",
            columns=["ticker", "exchange_id"],
            unique=True,
        ),
        SafeSQL(
            steps=[[ATTACH]],
            reverse_steps=[
                ["ALTER TABLE assets_asset DROP CONSTRAINT IF EXISTS assets_asset_ticker_exchange_unique"]
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="asset",
                    constraint=models.UniqueConstraint(
                        fields=("ticker", "exchange"), name="assets_asset_ticker_exchange_unique"
                    ),
                ),
            ],
            description="Attach UNIQUE (ticker, exchange_id) to its index",
        ),
    ]
