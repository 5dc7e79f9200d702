"""How hard a run may push: batch sizing toward a target duration, and health checks that put a
run on hold instead of failing it. One place for the policy; jobs only override numbers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from django.conf import settings
from django.db import connection

from . import pg
from .exceptions import InvalidTuning
from .pg import MAX_MILLIS


@dataclass(frozen=True)
class Tuning:
    batch_size: int = 1_000
    min_batch_size: int = 100
    max_batch_size: int = 50_000
    target_batch_seconds: float = 0.5
    max_growth: float = 2.0  # a batch is at most this many times the previous one
    smoothing: float = 0.3  # weight of the newest batch in the moving average
    pause_seconds: float = 0.0  # sleep between batches, to leave room for live traffic
    max_attempts: int = 3
    retry_backoff_seconds: float = 2.0
    lease_seconds: float = 30.0  # a claimed batch whose worker vanished is reclaimed after this
    slice_seconds: float = 20.0  # a Celery task works this long, then re-enqueues itself
    lock_timeout_ms: int = 2_000  # a batch waits at most this long for a row lock
    statement_timeout_ms: int = 60_000
    hold_seconds: float = 5.0
    max_lock_waiters: int = 0  # sessions queued on a lock on the job's tables before holding
    max_transaction_seconds: float = 600.0  # an older open transaction puts the run on hold
    max_replica_lag_seconds: float = 30.0

    @classmethod
    def resolve(cls, *layers: dict) -> Tuning:
        """Merge defaults, then the job's, then the run's options; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        merged: dict = {}
        for layer in layers:
            unknown = set(layer) - names
            if unknown:
                raise InvalidTuning(f"unknown tuning option(s): {', '.join(sorted(unknown))}")
            merged.update(layer)
        tuning = cls(**merged)
        tuning.validate()
        return tuning

    def validate(self) -> None:
        """Every knob a number of the right kind within its range: a value from `--option`
        that a worker would choke on (a negative sleep, an infinite lease, a timeout PostgreSQL
        refuses) is refused here, before a run is created."""
        for f in fields(self):
            kind, low, high, low_open = LIMITS[f.name]
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind is int and not isinstance(value, int)
            ):
                noun = "a whole number" if kind is int else "a number"
                raise InvalidTuning(f"{f.name} must be {noun}, not {value!r}")
            if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
                bound = f"more than {low}" if low_open else f"at least {low}"
                raise InvalidTuning(f"{f.name} must be {bound} and at most {high}, got {value!r}")
        if self.min_batch_size > self.max_batch_size:
            raise InvalidTuning("min_batch_size must be positive and at most max_batch_size")

    def as_dict(self) -> dict:
        return asdict(self)


DAY = 86_400.0
MAX_ROWS = 10_000_000
# name: (type, lowest, highest, lowest excluded)
LIMITS: dict[str, tuple[type, float, float, bool]] = {
    "batch_size": (int, 1, MAX_ROWS, False),
    "min_batch_size": (int, 1, MAX_ROWS, False),
    "max_batch_size": (int, 1, MAX_ROWS, False),
    "target_batch_seconds": (float, 0, DAY, True),
    "max_growth": (float, 1, 1_000, False),
    "smoothing": (float, 0, 1, True),
    "pause_seconds": (float, 0, DAY, False),
    "max_attempts": (int, 1, 1_000, False),
    "retry_backoff_seconds": (float, 0, DAY, False),
    "lease_seconds": (float, 0, DAY, True),
    "slice_seconds": (float, 0, DAY, True),
    "lock_timeout_ms": (int, 1, MAX_MILLIS, False),
    "statement_timeout_ms": (int, 1, MAX_MILLIS, False),
    "hold_seconds": (float, 0, DAY, False),
    "max_lock_waiters": (int, 0, 1_000_000, False),
    "max_transaction_seconds": (float, 0, 365 * DAY, True),
    "max_replica_lag_seconds": (float, 0, 365 * DAY, True),
}


def site_defaults() -> dict:
    """The deployment's tuning (settings.MIGRATIONS_WORKER["TUNING"]), under job and run."""
    return dict(settings.MIGRATIONS_WORKER.get("TUNING", {}))


def next_batch_size(current: int, seconds_per_key: float | None, tuning: Tuning) -> int:
    """Aim the next batch at the target duration, growing at most `max_growth` times per step."""
    if not seconds_per_key or seconds_per_key <= 0:
        ideal = current * tuning.max_growth
    else:
        ideal = tuning.target_batch_seconds / seconds_per_key
    ideal = min(ideal, current * tuning.max_growth)
    ideal = max(ideal, current / tuning.max_growth)
    return int(max(tuning.min_batch_size, min(tuning.max_batch_size, ideal)))


def moving_average(previous: float | None, observed: float, tuning: Tuning) -> float:
    if previous is None:
        return observed
    return tuning.smoothing * observed + (1 - tuning.smoothing) * previous


# -- health: each signal a small check; the first that objects puts the run on hold ----------------

LOCK_WAITERS = """
SELECT count(*) FROM pg_locks l
WHERE NOT l.granted AND l.pid <> pg_backend_pid()
  AND l.relation = ANY(SELECT to_regclass(t) FROM unnest(%s::text[]) AS t)
"""

OLDEST_TRANSACTION = """
SELECT pid, extract(epoch FROM now() - xact_start)::int FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND xact_start < now() - make_interval(secs => %s)
ORDER BY xact_start LIMIT 1
"""

REPLICA_LAG = "SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication"


def lock_waiters(cursor, tables: tuple[str, ...], tuning: Tuning) -> str:
    """Sessions queued for a lock on the job's tables: the application is already waiting."""
    cursor.execute(LOCK_WAITERS, [list(tables)])
    waiters = cursor.fetchone()[0]
    if waiters > tuning.max_lock_waiters:
        return f"{waiters} session(s) waiting for a lock on {', '.join(tables)}"
    return ""


def long_transaction(cursor, tables: tuple[str, ...], tuning: Tuning) -> str:
    """A transaction open this long holds back vacuum; more dead rows from us make it worse."""
    cursor.execute(OLDEST_TRANSACTION, [tuning.max_transaction_seconds])
    row = cursor.fetchone()
    return f"transaction open for {row[1]}s (pid {row[0]})" if row else ""


def ddl_backing_off(cursor, tables: tuple[str, ...], tuning: Tuning) -> str:
    """A deploy step was refused a lock and is backing off (operations/ddl.py): a batch holding
    row locks is a likely reason, so the job steps aside while the step asks again."""
    cursor.execute(pg.HOLDERS_OF, [pg.DDL_BACKING_OFF_KEY])
    steps = cursor.fetchone()[0]
    return f"{steps} deploy step(s) backing off from a lock: stepping aside" if steps else ""


def replica_lag(cursor, tables: tuple[str, ...], tuning: Tuning) -> str:
    """Standbys replaying behind: every batch adds WAL they must replay."""
    cursor.execute(REPLICA_LAG)
    lag = cursor.fetchone()[0]
    if lag is not None and lag > tuning.max_replica_lag_seconds:
        return f"replica lag {lag:.0f}s"
    return ""


HealthCheck = Callable[[object, tuple[str, ...], Tuning], str]
HEALTH_CHECKS: tuple[HealthCheck, ...] = (lock_waiters, ddl_backing_off, long_transaction,
                                          replica_lag)


def health_hold_reason(tables: tuple[str, ...], tuning: Tuning) -> str:
    """Why the database is too busy for another batch right now, or '' if it is not."""
    with connection.cursor() as cursor:
        for check in HEALTH_CHECKS:
            reason = check(cursor, tables, tuning)
            if reason:
                return reason
    return ""
