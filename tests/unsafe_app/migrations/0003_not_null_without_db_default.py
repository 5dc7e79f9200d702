"""UNSAFE: NOT NULL without db_default; running code that inserts without it fails."""

from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("unsafe_app", "0002_plain_index")]
    operations = [
        migrations.AddField("gadget", "rank", models.IntegerField(default=0)),
    ]
