"""Alert becomes a UUIDModel, step 3: UNIQUE (uuid) on investments_alert, built concurrently.

The primary key adopts this index in 0010 (`PRIMARY KEY USING INDEX`). Reads and writes carry
on during the build; re-runnable: a valid index is kept, an INVALID one left by a failed build
is dropped and built again.
"""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage

LINT_EXCEPTIONS = {
    "contract-operation-in-pre-deploy":
    "UUIDs come from gen_random_uuid() (the default of 0005, and the alerts_uuid job), never from "
    "the previous release, which does not know the column: it cannot write a duplicate",
}


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("investments", "0006_alert_uuid_not_null")]
    operations = [
        CreateIndexConcurrently(
            name="investments_alert_uuid_uniq",
            table="investments_alert",
            columns=["uuid"],
            unique=True,
        ),
    ]
