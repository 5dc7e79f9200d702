from django.db import migrations

from migrations_worker.operations import RequireJob, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False  # RequireJob may finish the job inline, committing batch by batch
    dependencies = [("engine_app", "0002_enqueue_touch_widgets")]
    operations = [RequireJob("test_touch_widgets", inline_limit=1_000)]
