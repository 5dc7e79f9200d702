"""The engine-only scratch database of the single-fault chaos tests (`tests.scratch.Database`
drives it)."""

from __future__ import annotations

from tests.scratch import Database


def engine_database(url: str, broker_url: str, widgets: int) -> Database:
    """A database with only the engine, the results table and the test job's widgets: what a
    single-fault test of the engine needs, migrated in a few seconds."""
    db = Database(url, broker_url)
    for app in ("engine_app", "django_celery_results"):
        db.manage("migrate", app, "-v", "0")
    with db.connect() as conn:
        conn.execute("INSERT INTO engine_app_widget (id, touches, value) "
                     "SELECT g, 0, g FROM generate_series(1, %s) g", [widgets])
        conn.execute("SELECT setval(pg_get_serial_sequence('engine_app_widget', 'id'), %s)",
                     [widgets])
    return db
