"""UNSAFE: a pre-deploy migration that drops a column the previous release still writes."""

from django.db import migrations

from migrations_worker.operations import SafeSQL, Stage

LINT_EXCEPTIONS = {
    "ban-drop-column": "the column is unused by the new release; the finding under test is the stage",
}


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("unsafe_app", "0011_no_stage")]
    operations = [SafeSQL([["ALTER TABLE unsafe_app_gadget DROP COLUMN IF EXISTS uuid"]])]
