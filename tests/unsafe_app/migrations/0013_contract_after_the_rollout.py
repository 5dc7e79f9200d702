"""SAFE: the same kind of contract step, declared post-deploy (after the rollout)."""

from django.db import migrations

from migrations_worker.operations import SafeSQL, Stage

LINT_EXCEPTIONS = {
    "ban-drop-column": "post-deploy: only the new release runs, and it no longer reads the column",
}


class Migration(migrations.Migration):
    stage = Stage.POST
    atomic = False
    dependencies = [("unsafe_app", "0012_contract_before_the_rollout")]
    operations = [SafeSQL([["ALTER TABLE unsafe_app_gadget DROP COLUMN IF EXISTS rank"]])]
