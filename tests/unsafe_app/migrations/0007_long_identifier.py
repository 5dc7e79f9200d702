"""UNSAFE: an index name PostgreSQL would truncate to 63 bytes."""

from django.db import migrations

from migrations_worker.operations import CreateIndexConcurrently, Stage


class Migration(migrations.Migration):
    stage = Stage.PRE
    atomic = False
    dependencies = [("unsafe_app", "0006_concurrent_index_in_atomic")]
    operations = [
        CreateIndexConcurrently(
            "unsafe_gadget_an_index_name_so_long_that_postgresql_would_cut_it_short_idx",
            "unsafe_app_gadget", ["uuid"],
        ),
    ]
