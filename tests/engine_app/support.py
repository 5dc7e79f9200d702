"""What the engine's tests share about `tests.engine_app`: its job, its widgets and the way
back and forth along its three migrations."""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

JOB = "test_touch_widgets"
LATEST = ("engine_app", "0003_require_touch_widgets")
GATED = "engine_app.0003_require_touch_widgets"


def make_widgets(count: int, first_id: int = 1, *, using: str = DEFAULT_DB_ALIAS) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "INSERT INTO engine_app_widget (id, touches, value) "
            "SELECT g, 0, g FROM generate_series(%s, %s) g",
            [first_id, first_id + count - 1],
        )
        cursor.execute("SELECT setval(pg_get_serial_sequence('engine_app_widget', 'id'), %s)",
                       [first_id + count - 1])


def touches_histogram(*, using: str = DEFAULT_DB_ALIAS) -> dict[int, int]:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1")
        return dict(cursor.fetchall())


def migrate_to(*targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))


def applied(app: str, name: str) -> bool:
    return MigrationRecorder(connection).migration_qs.filter(app=app, name=name).exists()


def scratch_broker_url() -> str:
    """A Redis database of these tests' own: messages for a scratch database's runs go there."""
    return f"{settings.REDIS_URL.rsplit('/', 1)[0]}/{settings.TEST_REDIS_DBS['scratch']}"
