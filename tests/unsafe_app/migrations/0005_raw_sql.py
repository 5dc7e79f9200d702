"""UNSAFE: RunSQL runs without lock_timeout and is never retried."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("unsafe_app", "0004_new_primary_key")]
    operations = [
        migrations.RunSQL("ALTER TABLE unsafe_app_gadget ADD COLUMN note text",
                          "ALTER TABLE unsafe_app_gadget DROP COLUMN note"),
    ]
