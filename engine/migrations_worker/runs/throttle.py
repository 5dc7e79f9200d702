"""How hard a run may push: batch sizing toward a target duration, and health checks that put a
run on hold instead of failing it. One place for the policy; jobs only override numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from django.db import connections

from .. import conf, pg
from ..exceptions import InvalidTuning
from ..models import HoldKind
from ..pg import MAX_MILLIS


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
    # WAL a standby may have left to replay (or an idle replication slot may retain, the WAL
    # a disconnected standby will have to): about what one replays in 10-30 s. Read from the
    # standby's last report (every wal_receiver_status_interval, 10 s by default), so keep it
    # well above the WAL of a few batches.
    max_replica_lag_bytes: int = 1024**3
    # Keys a run may set aside (quarantine.py) before it pauses: this many, or this share of
    # the rows done if that is more.
    quarantine_allowance: int = 10
    quarantine_rate: float = 0.001

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
    "max_replica_lag_bytes": (int, 1, 2**62, False),
    "quarantine_allowance": (int, 0, MAX_ROWS, False),
    "quarantine_rate": (float, 0, 1, False),
}


def site_defaults() -> dict:
    """The deployment's tuning (settings.MIGRATIONS_WORKER["TUNING"]), under job and run."""
    return dict(conf.get("TUNING"))


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

# A run's hold_reason column holds this much; a longer reason is cut, never refused.
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Hold:
    """Why a run is put on hold: its kind (what the metrics and the admin count and show) and a
    text for the operator (which tables, which standby, how far behind)."""

    kind: HoldKind
    text: str

    @property
    def reason(self) -> str:
        """The text as a run stores it: cut to its column, never refused."""
        if len(self.text) <= MAX_REASON_CHARS:
            return self.text
        return self.text[:MAX_REASON_CHARS - 3] + "..."


# Sessions waiting for a lock (one not granted) that is on one of the tables, or that queue for
# a row of one: a session waiting for a row another transaction holds waits on that
# transaction's id, not on the table, holding the row's tuple lock on the table meanwhile (the
# first in the queue; the next ones wait for that tuple lock).
# Relation oids are per database, and databases made from one template share them: a lock is
# on the job's table only if it is in this database too.
LOCK_WAITERS = """
SELECT count(DISTINCT w.pid) FROM pg_locks w
WHERE NOT w.granted AND w.pid <> pg_backend_pid()
  AND EXISTS (SELECT 1 FROM pg_locks l
              WHERE l.pid = w.pid AND (NOT l.granted OR l.locktype = 'tuple')
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.relation = ANY(SELECT to_regclass(t) FROM unnest(%s::text[]) AS t))
"""

OLDEST_TRANSACTION = """
SELECT pid, extract(epoch FROM now() - xact_start)::int FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND xact_start < now() - make_interval(secs => %s)
ORDER BY xact_start LIMIT 1
"""


def lock_waiters(cursor, tables: tuple[str, ...], tuning: Tuning) -> Hold | None:
    """Sessions queued for a lock on the job's tables: the application is already waiting."""
    cursor.execute(LOCK_WAITERS, [list(tables)])
    waiters = cursor.fetchone()[0]
    if waiters > tuning.max_lock_waiters:
        return Hold(HoldKind.LOCK_WAITERS,
                    f"{waiters} session(s) waiting for a lock on {', '.join(tables)}")
    return None


def long_transaction(cursor, tables: tuple[str, ...], tuning: Tuning) -> Hold | None:
    """A transaction open this long holds back vacuum; more dead rows from us make it worse."""
    cursor.execute(OLDEST_TRANSACTION, [tuning.max_transaction_seconds])
    row = cursor.fetchone()
    if row is None:
        return None
    return Hold(HoldKind.LONG_TRANSACTION, f"transaction open for {row[1]}s (pid {row[0]})")


# Every walsender but a base backup's. A standby this role may not see into (it lacks
# pg_read_all_stats) still has its row, with the positions NULL: "cannot be read", not "fine".
STANDBYS = """
SELECT application_name, replay_lsn IS NOT NULL, extract(epoch FROM replay_lag),
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END,
                       replay_lsn)
FROM pg_stat_replication
WHERE state IS DISTINCT FROM 'backup'
ORDER BY application_name
"""


@dataclass(frozen=True)
class Expected:
    """The standbys a site expects, from `MIGRATIONS_WORKER["STANDBYS"]` (env
    MW_EXPECTED_STANDBYS): their names (`application_name` in their `primary_conninfo`), or only
    how many there are. Nothing expected: only the standbys that are connected are watched."""

    names: tuple[str, ...] = ()
    count: int = 0

    @classmethod
    def parse(cls, value: object) -> Expected:
        """"" / None / 0: none; 2 or "2": a count; "a,b" or ["a", "b"]: names."""
        if value is None or value == "":
            return cls()
        if isinstance(value, bool):
            raise InvalidTuning(f"expected standbys: a count or names, not {value!r}")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            count = int(value)
            if count < 0:
                raise InvalidTuning(f"expected standbys: a count must be 0 or more, got {count}")
            return cls(count=count)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or not all(isinstance(i, str) for i in items):
            raise InvalidTuning(f"expected standbys: a count or names, not {value!r}")
        names = tuple(name.strip() for name in items)
        if not names or not all(STANDBY_NAME.fullmatch(name) for name in names):
            raise InvalidTuning(f"expected standbys: names are application_names (letters, "
                                f"digits, _ . -), got {value!r}")
        return cls(names=names, count=len(names))


STANDBY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")


def expected_standbys() -> Expected:
    return Expected.parse(conf.get("STANDBYS"))


@dataclass(frozen=True)
class Standby:
    """One row of pg_stat_replication, as the check reads it."""

    name: str
    readable: bool  # replay_lsn was reported and this role may see it
    lag_seconds: float | None  # NULL once caught up and idle
    lag_bytes: float | None


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def replica_hold(standbys: Iterable[Standby], expected: Expected, tuning: Tuning) -> Hold | None:
    """Why the standbys hold the run, or None: an expected one not connected, or whose lag
    cannot be read, fewer connected than expected (a missing standby: it may be hours behind),
    or any one behind by more than the limits, seconds or bytes (replica lag). Every problem is
    named in the text; a missing standby gives the hold its kind, as the graver of the two. A
    standby that has replayed everything (0 bytes behind) is not behind, whatever its last
    measured replay_lag says."""
    standbys = list(standbys)
    connected = {s.name for s in standbys}
    problems = [f"expected standby '{name}' is not connected (no row in pg_stat_replication): "
                "bring it back, or take it out of MW_EXPECTED_STANDBYS"
                for name in expected.names if name not in connected]
    readable = [s for s in standbys if s.readable]
    problems += [f"lag of standby '{s.name}' cannot be read (replay_lsn is NULL: no report yet, "
                 "or this role lacks pg_read_all_stats: GRANT pg_read_all_stats TO it)"
                 for s in standbys if not s.readable and s.name in expected.names]
    if not expected.names and len(readable) < expected.count:
        seen = ", ".join(f"'{s.name}'" + ("" if s.readable else " (lag unreadable)")
                         for s in standbys) or "none"
        problems.append(f"{expected.count} standby(s) expected, {len(readable)} connected with a "
                        f"readable lag (connected: {seen})")
    kind = HoldKind.MISSING_STANDBY if problems else HoldKind.REPLICA_LAG
    for s in readable:
        seconds = s.lag_seconds or 0.0
        behind = s.lag_bytes or 0.0
        if behind > 0 and (seconds > tuning.max_replica_lag_seconds
                           or behind > tuning.max_replica_lag_bytes):
            problems.append(
                f"standby '{s.name}' is {seconds:.1f}s and {_size(behind)} behind (limits "
                f"{tuning.max_replica_lag_seconds:g}s, {_size(tuning.max_replica_lag_bytes)})")
    return Hold(kind, "; ".join(problems)) if problems else None


# The sessions holding a session advisory lock of this database, by its bigint key.
HOLDERS_OF = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((classid::bigint << 32) | objid::bigint) = %s
"""


def ddl_backing_off(cursor, tables: tuple[str, ...], tuning: Tuning) -> Hold | None:
    """A deploy step was refused a lock and is backing off (operations/ddl.py): a batch holding
    row locks is a likely reason, so the job steps aside while the step asks again."""
    cursor.execute(HOLDERS_OF, [pg.DDL_BACKING_OFF_KEY])
    steps = cursor.fetchone()[0]
    if not steps:
        return None
    return Hold(HoldKind.DDL_BACKOFF, f"{steps} deploy step(s) backing off from a lock: stepping aside")


def replica_lag(cursor, tables: tuple[str, ...], tuning: Tuning) -> Hold | None:
    """Standbys replaying behind, or missing: every batch adds WAL they must replay, and a
    standby that disconnected has no row to read a lag from (it may be hours behind)."""
    cursor.execute(STANDBYS)
    standbys = [Standby(name, readable, None if seconds is None else float(seconds),
                        None if behind is None else float(behind))
                for name, readable, seconds, behind in cursor.fetchall()]
    return replica_hold(standbys, expected_standbys(), tuning)


# Physical slots no standby streams from, retaining more WAL than the limit: a standby that went
# away keeps its slot, and the slot keeps every byte of WAL since it left (from its restart_lsn),
# which the standby must replay when it is back, whether or not it is an expected one. A slot
# whose WAL is already lost (wal_status 'lost', restart_lsn NULL) retains nothing any more.
IDLE_SLOTS = """
SELECT slot_name, wal_status, retained FROM (
  SELECT slot_name, wal_status,
         pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                              ELSE pg_current_wal_lsn() END, restart_lsn) AS retained
  FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT active
) slots
WHERE retained > %s
ORDER BY retained DESC, slot_name
"""


def standby_slot(cursor, tables: tuple[str, ...], tuning: Tuning) -> Hold | None:
    """A disconnected standby, told by the WAL its slot retains: it has no row in
    pg_stat_replication to read a lag from, and every batch puts it further behind (and fills
    the primary's disk with WAL kept for it)."""
    cursor.execute(IDLE_SLOTS, [tuning.max_replica_lag_bytes])
    slots = [f"replication slot '{name}' has no standby connected and retains {_size(float(kept))} "
             f"of WAL (wal_status {status})" for name, status, kept in cursor.fetchall()]
    if not slots:
        return None
    return Hold(HoldKind.STANDBY_SLOT,
                f"{'; '.join(slots)} (limit {_size(tuning.max_replica_lag_bytes)}): bring its "
                "standby back, or drop the slot if that standby is gone for good")


HealthCheck = Callable[[object, tuple[str, ...], Tuning], Hold | None]
HEALTH_CHECKS: tuple[HealthCheck, ...] = (lock_waiters, ddl_backing_off, long_transaction,
                                          replica_lag, standby_slot)


def health_hold(tables: tuple[str, ...], tuning: Tuning, *, using: str) -> Hold | None:
    """Why the database `using` is too busy for another batch right now, or None if it is not.
    Each check reads that database's own server: its locks, its transactions, its standbys."""
    with connections[using].cursor() as cursor:
        for check in HEALTH_CHECKS:
            hold = check(cursor, tables, tuning)
            if hold is not None:
                return hold
    return None
