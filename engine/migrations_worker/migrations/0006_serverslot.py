"""Leases on a server's slots (`ServerSlot`, runs/server_slots.py): a new table, with no foreign
key, so creating it locks nothing of the engine's tables. Read and written in the control
database (`default`) only; elsewhere it stays empty. The two new hold kinds (`standby_slot`,
`server_busy`) are new choices, not a schema change."""

from django.db import migrations, models

from migrations_worker.operations import Stage

HOLD_KINDS = [
    ("lock_waiters", "lock waiters"),
    ("ddl_backoff", "ddl backoff"),
    ("long_transaction", "long transaction"),
    ("missing_standby", "missing standby"),
    ("replica_lag", "replica lag"),
    ("standby_slot", "standby slot"),
    ("server_busy", "server busy"),
]


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("migrations_worker", "0005_hold_kind")]
    operations = [
        migrations.CreateModel(
            name="ServerSlot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("server", models.CharField(max_length=200)),
                ("target", models.CharField(max_length=100)),
                ("run_id", models.BigIntegerField(
                    help_text="The run's id in its own target database.")),
                ("holder", models.CharField(help_text="The worker that renewed it last.",
                                            max_length=200)),
                ("taken_at", models.DateTimeField()),
                ("lease_until", models.DateTimeField()),
            ],
            options={
                "ordering": ["server", "target", "run_id"],
                "indexes": [models.Index(fields=["server", "lease_until"],
                                         name="mw_slot_server_lease_idx")],
                "constraints": [models.UniqueConstraint(fields=("target", "run_id"),
                                                        name="mw_slot_target_run_uniq")],
            },
        ),
        migrations.AlterField(
            model_name="jobrun",
            name="hold_kind",
            field=models.CharField(blank=True, choices=HOLD_KINDS, db_default="", default="",
                                   max_length=20),
        ),
        migrations.AlterField(
            model_name="jobrunevent",
            name="hold_kind",
            field=models.CharField(blank=True, choices=HOLD_KINDS, db_default="", default="",
                                   max_length=20),
        ),
    ]
