"""Exceptions that do not hold: no reason, a rule that does not exist, one that excuses nothing."""

from django.db import migrations

from migrations_worker.operations import SafeSQL, Stage

LINT_EXCEPTIONS = {
    "ban-drop-column": "",
    "no-such-rule": "a reason that is long enough to count",
    "raw-sql": "there is no RunSQL here, so this excuses nothing",
}


class Migration(migrations.Migration):
    stage = Stage.POST
    atomic = False
    dependencies = [("unsafe_app", "0009_excused_with_a_reason")]
    operations = [
        SafeSQL([["ALTER TABLE unsafe_app_gadget DROP COLUMN IF EXISTS label"]]),
    ]
