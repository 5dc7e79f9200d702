"""The archive for the deprecated `sector` / `industry` text (a new table)."""

from django.db import migrations, models

from migrations_worker.operations import Stage


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
                ("archived_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("asset_id", "field", "value"), name="assets_legacytext_value_uniq")
                ],
            },
        ),
    ]
