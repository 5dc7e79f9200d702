"""UNSAFE: RunSQL runs without lock_timeout and is never retried."""

from django.db import migrations

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("unsafe_app", "0004_new_primary_key")]
    operations = [
        migrations.RunSQL("ALTER TABLE unsafe_app_gadget ADD COLUMN note text",
                          "ALTER TABLE unsafe_app_gadget DROP COLUMN note"),
    ]
