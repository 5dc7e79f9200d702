"""Keys a run set aside after every attempt at them failed: a new table that nothing reads
yet. Its foreign keys take brief SHARE ROW EXCLUSIVE locks on the runs and batches tables, so
the step runs under lock_timeout and is retried (Safely). The batch status 'quarantined' is a
new choice, not a schema change."""

import django.db.models.deletion
from django.db import migrations, models

from migrations_worker.operations import Safely, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("migrations_worker", "0003_batch_counts_folded")]
    operations = [
        Safely(
            migrations.CreateModel(
                name="QuarantinedKey",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                               serialize=False, verbose_name="ID")),
                    ("key", models.BigIntegerField()),
                    ("error", models.TextField()),
                    ("sqlstate", models.CharField(blank=True, default="", max_length=5)),
                    ("attempts", models.PositiveIntegerField()),
                    ("resolution", models.CharField(
                        choices=[("open", "Open"), ("accepted", "Accepted"),
                                 ("retried", "Retried")],
                        default="open", max_length=20)),
                    ("created_at", models.DateTimeField(auto_now_add=True)),
                    ("resolved_at", models.DateTimeField(blank=True, null=True)),
                    ("resolved_by", models.CharField(blank=True, default="", max_length=200)),
                    ("batch", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                related_name="quarantined",
                                                to="migrations_worker.jobbatch")),
                    ("run", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="quarantined",
                                              to="migrations_worker.jobrun")),
                ],
                options={
                    "verbose_name": "quarantined key",
                    "ordering": ["run_id", "key", "id"],
                    "indexes": [models.Index(fields=["run", "resolution"],
                                             name="mw_quarantine_run_res_idx")],
                },
            ),
        ),
        migrations.AlterField(
            model_name="jobbatch",
            name="status",
            field=models.CharField(
                choices=[("pending", "Pending"), ("running", "Running"),
                         ("succeeded", "Succeeded"), ("failed", "Failed"),
                         ("quarantined", "Quarantined")],
                default="pending", max_length=20),
        ),
    ]
