"""A deliberately non-idempotent job: each batch adds 1 to `touches`, so any batch applied twice,
or skipped, shows in the data. Knobs: `sleep` (seconds per batch, before its write),
`sleep_after` (seconds after its write, before the engine commits it), `fail_at` (a key whose
batch raises until the knob is removed)."""

from migrations_worker.job import BatchResult, Job, register


def knob(cursor, name: str, default: float | None = None) -> float | None:
    cursor.execute("SELECT value FROM engine_app_knob WHERE name = %s", [name])
    row = cursor.fetchone()
    return row[0] if row else default


@register
class TouchWidgets(Job):
    name = "test_touch_widgets"
    table = "engine_app_widget"
    description = "test-only: touch every widget once"
    defaults = {"batch_size": 100, "min_batch_size": 10, "max_batch_size": 100_000,
                "retry_backoff_seconds": 0.2, "lease_seconds": 2.0}

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        sleep = knob(cursor, "sleep", 0.0)
        if sleep:
            cursor.execute("SELECT pg_sleep(%s)", [sleep])
        fail_at = knob(cursor, "fail_at")
        if fail_at is not None and start < fail_at <= end:
            raise RuntimeError(f"injected failure at key {int(fail_at)}")
        cursor.execute(
            "UPDATE engine_app_widget SET touches = touches + 1 WHERE id > %s AND id <= %s",
            [start, end],
        )
        touched = cursor.rowcount
        sleep_after = knob(cursor, "sleep_after", 0.0)
        if sleep_after:
            cursor.execute("SELECT pg_sleep(%s)", [sleep_after])
        return BatchResult(rows=touched, counts={"widgets_touched": touched})

    def count_remaining(self, cursor) -> int:
        cursor.execute("SELECT count(*) FROM engine_app_widget WHERE touches = 0")
        return cursor.fetchone()[0]

    def remaining_key_range(self, cursor) -> tuple[int, int] | None:
        cursor.execute("SELECT min(id), max(id) FROM engine_app_widget WHERE touches = 0")
        low, high = cursor.fetchone()
        return None if low is None else (low, high)
