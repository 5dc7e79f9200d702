"""The application's load, made to live through faults the way a real application does: when
its connection is lost it reconnects and carries on.

THE RULE that separates the fault's errors from the migration's: an error is the injected
fault's when it is a *connection-level* failure (the server went away: psycopg.OperationalError
leaving the connection closed, or SQLSTATE 57P01/57P02/57P03 admin/crash shutdown, cannot
connect now, or class 08) **and** it happened inside the window of a fault that takes down the
load's own connection (a PostgreSQL restart, padded by a grace period for reconnecting). Every
other error counts against the migration and must be zero: a statement that fails while its
connection stays up (lock timeout, deadlock, constraint or column errors), and a connection
lost outside such a window.

A statement cut off by a lost connection may or may not have committed: the load counts those
as *ambiguous*, so "nothing lost" is checked as: every acknowledged row exists, and at most the
ambiguous ones exist on top of them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from seed.live_load import LiveLoad

CONNECTION_SQLSTATES = ("57P01", "57P02", "57P03")


@dataclass(frozen=True)
class LoadError:
    at: float  # time.monotonic()
    op: str
    connection_lost: bool
    message: str


def connection_lost(exc: psycopg.Error, conn: psycopg.Connection) -> bool:
    state = getattr(exc, "sqlstate", None) or ""
    return bool(conn.closed or conn.broken or state in CONNECTION_SQLSTATES
                or state.startswith("08"))


@dataclass
class Attribution:
    """The load's errors split by THE RULE above."""

    by_fault: list[LoadError] = field(default_factory=list)
    by_migration: list[LoadError] = field(default_factory=list)


class RestartableLoad(LiveLoad):
    """`seed.live_load.LiveLoad`'s statements, on a connection that is re-opened when lost."""

    def __init__(self, url: str, seed: int = 1, pause: float = 0.005):
        super().__init__(url, seed=seed, pause=pause)
        self.failures: list[LoadError] = []
        self.reconnects = 0
        self.ambiguous: Counter[str] = Counter()  # op -> statements cut off by a lost connection
        self.timeline: list[tuple[float, float]] = []  # (start, seconds) of every statement

    def _connect(self) -> psycopg.Connection | None:
        while not self._halt.is_set():
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=3)
            except psycopg.OperationalError:
                time.sleep(0.2)
        return None

    def run(self) -> None:
        conn = self._connect()
        if conn is None:
            return
        self._targets(conn)
        ops = [self.insert_alert, self.insert_trigger, self.touch_holding,
               self.insert_watch, self.read_asset, self.read_portfolio, self.insert_asset]
        n = 0
        try:
            while not self._halt.is_set():
                op = ops[n % len(ops)]
                n += 1
                started = time.monotonic()
                try:
                    op(conn)
                except psycopg.Error as exc:
                    lost = connection_lost(exc, conn)
                    self.failures.append(LoadError(started, op.__name__, lost,
                                                   f"{type(exc).__name__}: {exc}".strip()))
                    if lost:
                        self.ambiguous[op.__name__] += 1
                        conn.close()
                        conn = self._connect()
                        if conn is None:
                            return
                        self.reconnects += 1
                seconds = time.monotonic() - started
                self.result.record(op.__name__, seconds)
                self.timeline.append((started, seconds))
                time.sleep(self.pause)
        finally:
            if conn is not None:
                conn.close()

    def attribute(self, windows: list[tuple[float, float]], grace: float = 5.0) -> Attribution:
        """Split the errors by THE RULE; `windows` are (start, end) of faults that take down
        the load's connection."""
        split = Attribution()
        for error in self.failures:
            in_window = any(start - 0.5 <= error.at <= end + grace for start, end in windows)
            (split.by_fault if error.connection_lost and in_window else split.by_migration).append(
                error)
        return split

    def slowest_outside(self, windows: list[tuple[float, float]], grace: float = 5.0) -> float:
        """The longest statement that did not overlap a connection-killing fault."""
        slowest = 0.0
        for start, seconds in self.timeline:
            end = start + seconds
            if any(start <= w_end + grace and end >= w_start - 0.5 for w_start, w_end in windows):
                continue
            slowest = max(slowest, seconds)
        return slowest

    @property
    def assets_acknowledged(self) -> int:
        failed = sum(1 for f in self.failures if f.op == "insert_asset")
        return self.result.assets_inserted - failed
