"""UNSAFE: a plain AddIndex on an existing (think: big) table blocks its writes for the build."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("unsafe_app", "0001_initial")]
    operations = [
        migrations.AddIndex("gadget", models.Index(fields=["uuid"], name="unsafe_gadget_uuid_idx")),
    ]
