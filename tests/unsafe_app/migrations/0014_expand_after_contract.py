"""UNSAFE: a pre-deploy migration that could only run after the post-deploy one it depends on."""

from django.db import migrations

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("unsafe_app", "0013_contract_after_the_rollout")]
    operations = []
