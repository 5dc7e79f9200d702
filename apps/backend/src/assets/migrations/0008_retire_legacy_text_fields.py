"""`Asset.sector` / `Asset.industry` leave the model (state only: the columns stay, so code
still running the old model keeps working), and the `legacy_columns` job archives them."""

from django.db import migrations

from migrations_worker.operations import EnqueueJob


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("assets", "0007_legacy_text_archive"), ("migrations_worker", "0001_initial")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="asset", name="sector"),
                migrations.RemoveField(model_name="asset", name="industry"),
            ],
        ),
        EnqueueJob("legacy_columns"),
    ]
