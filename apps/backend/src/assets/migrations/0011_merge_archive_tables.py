"""New tables for the duplicate merge: the groups to merge (and the ones to undo), the
before-images it keeps, and the aliases that keep a removed duplicate's id resolving to its
survivor."""

import django.db.models.deletion
from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("assets", "0010_stop_new_duplicate_tickers")]
    operations = [
        migrations.CreateModel(
            name="DuplicateTickerGroup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("ticker", models.CharField(max_length=20)),
                ("exchange_id", models.BigIntegerField()),
                ("member_count", models.PositiveIntegerField()),
                ("survivor_id", models.BigIntegerField(blank=True, null=True)),
                ("merged_at", models.DateTimeField(blank=True, null=True)),
                ("undo_requested_at", models.DateTimeField(blank=True, null=True)),
                ("undone_at", models.DateTimeField(blank=True, null=True)),
                ("undo_report", models.JSONField(blank=True, null=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("ticker", "exchange_id"), name="assets_duplicategroup_key_uniq")
                ],
            },
        ),
        migrations.CreateModel(
            name="AssetMergeArchive",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("survivor_id", models.BigIntegerField()),
                ("table_name", models.CharField(max_length=63)),
                ("row_key", models.CharField(max_length=64)),
                (
                    "action",
                    models.CharField(
                        choices=[("removed", "Removed"), ("changed", "Changed"), ("redirected", "Redirected")],
                        max_length=10,
                    ),
                ),
                ("before", models.JSONField()),
                ("archived_at", models.DateTimeField(auto_now_add=True)),
                ("undone_at", models.DateTimeField(blank=True, null=True)),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="assets.duplicatetickergroup"
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["table_name", "row_key"], name="assets_mergearch_row_idx")],
            },
        ),
        migrations.CreateModel(
            name="AssetAlias",
            fields=[
                ("asset_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("survivor_id", models.BigIntegerField(db_index=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="assets.duplicatetickergroup"
                    ),
                ),
            ],
            options={"verbose_name_plural": "asset aliases"},
        ),
    ]
