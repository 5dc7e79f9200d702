from django.db import migrations

from migrations_worker.operations import EnqueueJob


class Migration(migrations.Migration):
    dependencies = [("engine_app", "0001_initial"), ("migrations_worker", "0001_initial")]
    operations = [EnqueueJob("test_touch_widgets")]
