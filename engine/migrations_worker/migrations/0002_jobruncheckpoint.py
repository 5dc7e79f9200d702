"""The ETA each run showed at 10% and 50%, to hold against its actual end: a new table that nothing
reads yet. Its foreign key takes a brief SHARE ROW EXCLUSIVE lock on the runs table, so the step
runs under lock_timeout and is retried (Safely)."""

import django.db.models.deletion
from django.db import migrations, models

from migrations_worker.operations import Safely, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("migrations_worker", "0001_initial")]
    operations = [
        Safely(
            migrations.CreateModel(
                name="JobRunCheckpoint",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                               verbose_name="ID")),
                    ("checkpoint", models.PositiveSmallIntegerField(help_text="Percent: 10 or 50.")),
                    ("percent", models.FloatField(
                        help_text="Where the run really was when it was taken.")),
                    ("at", models.DateTimeField()),
                    ("eta_seconds", models.FloatField(help_text="The ETA the run showed then.")),
                    ("run", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="checkpoints",
                                              to="migrations_worker.jobrun")),
                ],
                options={
                    "ordering": ["run_id", "checkpoint"],
                    "constraints": [models.UniqueConstraint(fields=("run", "checkpoint"),
                                                            name="mw_checkpoint_run_uniq")],
                },
            ),
        ),
    ]
