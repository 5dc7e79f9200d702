"""UNSAFE: a plain AddIndex on an existing (think: big) table blocks its writes for the build."""

from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("unsafe_app", "0001_initial")]
    operations = [
        migrations.AddIndex("gadget", models.Index(fields=["uuid"], name="unsafe_gadget_uuid_idx")),
    ]
