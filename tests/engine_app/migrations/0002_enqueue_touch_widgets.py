from django.db import migrations

from migrations_worker.operations import EnqueueJob, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("engine_app", "0001_initial"), ("migrations_worker", "0001_initial")]
    operations = [EnqueueJob("test_touch_widgets")]
