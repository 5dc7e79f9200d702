"""A new table: CREATE TABLE, its foreign key and its indexes are safe, nobody uses it yet."""

from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    initial = True
    dependencies = [("engine_app", "0001_initial")]
    operations = [
        migrations.CreateModel(
            name="Gadget",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("code", models.CharField(max_length=20, unique=True)),
                ("uuid", models.UUIDField(null=True)),
                ("widget", models.ForeignKey("engine_app.widget", on_delete=models.CASCADE)),
            ],
        ),
    ]
