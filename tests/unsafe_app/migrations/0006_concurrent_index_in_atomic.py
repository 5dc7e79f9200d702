"""UNSAFE: CONCURRENTLY in an atomic migration; PostgreSQL refuses it in a transaction."""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    dependencies = [("unsafe_app", "0005_raw_sql")]
    operations = [CreateIndexConcurrently("unsafe_gadget_code_idx", "unsafe_app_gadget", ["code"])]
