"""A hold's kind stored with it (`JobRun.hold_kind`) and with the event that records it
(`JobRunEvent.hold_kind`), so the metrics and the admin read the kind instead of parsing the
reason's text.

Catalog-only columns: each has a constant database default (""), so an engine from before this
migration that writes a run or an event keeps working, and its holds read as of no known kind.
Both tables take a brief ACCESS EXCLUSIVE lock, under lock_timeout and retried (Safely)."""

from django.db import migrations, models

from migrations_worker.operations import Safely, Stage

HOLD_KINDS = [
    ("lock_waiters", "lock waiters"),
    ("ddl_backoff", "ddl backoff"),
    ("long_transaction", "long transaction"),
    ("missing_standby", "missing standby"),
    ("replica_lag", "replica lag"),
]


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("migrations_worker", "0004_quarantinedkey")]
    operations = [
        Safely(
            migrations.AddField(
                model_name="jobrun",
                name="hold_kind",
                field=models.CharField(blank=True, choices=HOLD_KINDS, db_default="", default="",
                                       max_length=20),
            ),
            migrations.AddField(
                model_name="jobrunevent",
                name="hold_kind",
                field=models.CharField(blank=True, choices=HOLD_KINDS, db_default="", default="",
                                       max_length=20),
            ),
        ),
    ]
