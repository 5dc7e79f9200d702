"""Batches keep their own figures (`counts`, `folded`) and the run's totals are folded from
them in batches, instead of every batch transaction updating the run row.

Catalog-only columns (`folded` has a constant database default, so an engine from before this
migration that inserts a batch keeps working, and its batches count as already folded), then
the index the fold reads (a run's batches not yet folded), built concurrently."""

from django.db import migrations, models

from migrations_worker.operations import CreateIndexConcurrently, Safely, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("migrations_worker", "0002_jobruncheckpoint")]
    operations = [
        Safely(
            migrations.AddField(
                model_name="jobbatch",
                name="counts",
                field=models.JSONField(blank=True, null=True),
            ),
            migrations.AddField(
                model_name="jobbatch",
                name="folded",
                field=models.BooleanField(db_default=True, default=True),
            ),
        ),
        CreateIndexConcurrently(
            "mw_batch_run_folded_idx",
            "migrations_worker_jobbatch",
            ["run_id", "folded"],
            state_operations=[
                migrations.AddIndex(
                    model_name="jobbatch",
                    index=models.Index(fields=["run", "folded"], name="mw_batch_run_folded_idx"),
                ),
            ],
        ),
    ]
