"""A plain (ticker, exchange_id) index so the duplicate guard (0010) and the merge job look
groups up without scanning; the UNIQUE index of 0014 replaces it and 0015 drops it."""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("assets", "0008_retire_legacy_text_fields")]
    operations = [
        CreateIndexConcurrently(
            name="assets_asset_ticker_exchange_idx",
            table="assets_asset",
            columns=["ticker", "exchange_id"],
        ),
    ]
