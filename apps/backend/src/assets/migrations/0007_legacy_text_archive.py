"""The archive for the deprecated `sector` / `industry` text (a new table).

Taken back only once no link `legacy_columns` made still stands (`linked_id` records them):
without this table nothing would tell them from links people made.
"""

from django.db import migrations, models

from migrations_worker.operations import RefuseReverseWhile, Stage

STANDING_LINKS = """
SELECT count(*) FROM assets_assetlegacytext x JOIN assets_asset a ON a.id = x.asset_id
WHERE x.linked_id IS NOT NULL
  AND ((x.field = 'sector' AND a.sector_ref_id = x.linked_id)
       OR (x.field = 'industry' AND a.industry_ref_id = x.linked_id))
"""


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("assets", "0006_prices_asset_timestamp_index")]
    operations = [
        migrations.CreateModel(
            name="AssetLegacyText",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("asset_id", models.BigIntegerField(db_index=True)),
                ("field", models.CharField(max_length=10)),
                ("value", models.TextField()),
                (
                    "outcome",
                    models.CharField(
                        choices=[("matched", "Matched"), ("unmatched", "Unmatched"), ("ambiguous", "Ambiguous")],
                        max_length=10,
                    ),
                ),
                ("matched_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "source",
                    models.CharField(
                        choices=[("job", "Job"), ("write", "Write")], db_default="job", default="job", max_length=5
                    ),
                ),
                ("linked_id", models.BigIntegerField(blank=True, null=True)),
                ("archived_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("asset_id", "field", "value"), name="assets_legacytext_value_uniq")
                ],
            },
        ),
        RefuseReverseWhile(
            STANDING_LINKS,
            "Sector / Industry link(s) made by legacy_columns still stand, and only this archive "
            "(assets 0007) tells them from links people made. Take them back first: python "
            "manage.py backfill undo legacy_columns --inline, then migrate back again.",
        ),
    ]
