"""UNSAFE: AlterField moves the primary key, rewriting it and its references under lock."""

from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("unsafe_app", "0003_not_null_without_db_default")]
    operations = [
        migrations.RemoveField("gadget", "id"),
        migrations.AlterField("gadget", "uuid", models.UUIDField(primary_key=True, serialize=False)),
    ]
