"""How a lock-safe DDL step asks for its lock: a timing table of attempts.

Each attempt is a `lock_timeout` and the sleep after it is refused. While an `ALTER TABLE`
waits for its lock, every statement on that table queues behind it, so the first requests are
short (tens of milliseconds: the application waits at most that long behind one), and a step
that keeps being refused backs off for longer and longer, jittered, rather than asking for
longer: the request itself grows only up to a cap. Anchor: GitLab's
`Gitlab::Database::WithLockRetries` (`DEFAULT_TIMING_CONFIGURATION`, pairs of lock_timeout and
sleep that start at 100 ms / 50 ms); unlike GitLab, the last attempt is not made without a
lock_timeout: the step fails with SQLSTATE 55P03 and the deploy can simply be run again.

The table comes from `settings.MIGRATIONS_WORKER["DDL"]` (the site) and an operation's own
`lock_retry` (a migration that knows its table is hot, or cold), the latter over the former,
both plain dicts:

    "lock_timeout_ms": [20, 100]   the first request's lock_timeout, and its cap; each refused
                                   request asks for LOCK_GROWTH times more, up to the cap
    "sleep_ms": [20, 10_000]       the first back-off, and its cap; SLEEP_GROWTH times more each
                                   time, and each sleep a random JITTER share of it (at least half)
    "attempts": 40                 how many requests in all
    "timings": [[20, 20], ...]     or the table itself: (lock_timeout, sleep) per attempt
    "concurrent_lock_timeout_ms"   a CONCURRENTLY build's wait (it blocks no reader or writer)
    "statement_timeout_ms"         the steps that are not long-running
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from .. import conf
from ..exceptions import InvalidLockRetry
from ..pg import MAX_MILLIS

LOCK_GROWTH = 1.5
SLEEP_GROWTH = 2.0
JITTER = 0.5  # a sleep is uniform in [(1 - JITTER) * sleep, sleep]

DEFAULTS: dict[str, object] = {
    "lock_timeout_ms": [20, 100],
    "sleep_ms": [20, 10_000],
    "attempts": 40,
    "timings": None,
    "concurrent_lock_timeout_ms": 60_000,
    "statement_timeout_ms": 60_000,
}


@dataclass(frozen=True)
class Attempt:
    """One request for the lock: how long it may wait, and the back-off once refused."""

    number: int
    lock_timeout_ms: int
    sleep_ms: int

    def jittered_sleep_ms(self, rng: random.Random | None = None) -> float:
        return (rng or random).uniform((1 - JITTER) * self.sleep_ms, self.sleep_ms)


@dataclass(frozen=True)
class LockRetry:
    """A resolved timing table, plus the timeouts of the steps that do not take it."""

    timings: tuple[tuple[int, int], ...]
    concurrent_lock_timeout_ms: int
    statement_timeout_ms: int

    @classmethod
    def resolve(cls, *layers: dict | None) -> LockRetry:
        """The defaults, then the site's settings, then each given layer (an operation's)."""
        merged = dict(DEFAULTS)
        for layer in (site_config(), *layers):
            if not layer:
                continue
            unknown = set(layer) - set(DEFAULTS)
            if unknown:
                raise InvalidLockRetry(f"unknown lock-retry option(s): {', '.join(sorted(unknown))}")
            if "timings" not in layer and {"lock_timeout_ms", "sleep_ms", "attempts"} & set(layer):
                merged["timings"] = None  # an escalation given here replaces a table from below
            merged.update(layer)
        return cls(
            timings=tuple(_timings(merged)),
            concurrent_lock_timeout_ms=_millis("concurrent_lock_timeout_ms",
                                               merged["concurrent_lock_timeout_ms"]),
            statement_timeout_ms=_millis("statement_timeout_ms", merged["statement_timeout_ms"]),
        )

    def attempts(self) -> Iterator[Attempt]:
        for number, (lock_timeout_ms, sleep_ms) in enumerate(self.timings, start=1):
            yield Attempt(number, lock_timeout_ms, sleep_ms)

    @property
    def first_lock_timeout_ms(self) -> int:
        return self.timings[0][0]

    def limits(self, attempt: Attempt, *, long_running: bool, concurrent: bool
               ) -> dict[str, int | None]:
        """The timeouts of one attempt of a step (None: no limit), as `pg.timeouts` takes them.
        A CONCURRENTLY build waits out older transactions under its own, longer limit: its
        SHARE UPDATE EXCLUSIVE lock holds up no reader or writer."""
        return {
            "lock_timeout_ms": self.concurrent_lock_timeout_ms if concurrent else attempt.lock_timeout_ms,
            "statement_timeout_ms": None if long_running else self.statement_timeout_ms,
        }

    def describe(self) -> str:
        """The table in a line, for logs and `sqlmigrate`: `20/20, 30/40, ... ms (40 attempts)`."""
        shown = [f"{lock}/{sleep}" for lock, sleep in self.timings[:4]]
        more = ", ..." if len(self.timings) > 5 else ""
        last = f", {self.timings[-1][0]}/{self.timings[-1][1]}" if len(self.timings) > 4 else ""
        return (f"lock_timeout/sleep {', '.join(shown)}{more}{last} ms "
                f"({len(self.timings)} attempts)")


def site_config() -> dict:
    return dict(conf.get("DDL"))


def escalation(first_ms: float, cap_ms: float, growth: float, count: int) -> list[int]:
    """first, first * growth, ... capped: `count` values, rounded to whole milliseconds."""
    return [round(min(cap_ms, first_ms * growth ** i)) for i in range(count)]


def _timings(config: dict) -> list[tuple[int, int]]:
    table = config["timings"]
    if table is not None:
        if not isinstance(table, (list, tuple)) or not table:
            raise InvalidLockRetry(f"timings must be a non-empty list of [lock_timeout_ms, sleep_ms], "
                                   f"got {table!r}")
        pairs = []
        for pair in table:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InvalidLockRetry(f"each timing is [lock_timeout_ms, sleep_ms], got {pair!r}")
            pairs.append((_millis("a timing's lock_timeout_ms", pair[0]),
                          _millis("a timing's sleep_ms", pair[1], zero=True)))
        return pairs
    attempts = config["attempts"]
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 1_000:
        raise InvalidLockRetry(f"attempts must be a whole number from 1 to 1000, got {attempts!r}")
    lock_first, lock_cap = _range("lock_timeout_ms", config["lock_timeout_ms"])
    sleep_first, sleep_cap = _range("sleep_ms", config["sleep_ms"], zero=True)
    return list(zip(escalation(lock_first, lock_cap, LOCK_GROWTH, attempts),
                    escalation(sleep_first, sleep_cap, SLEEP_GROWTH, attempts), strict=True))


def _range(name: str, value, zero: bool = False) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InvalidLockRetry(f"{name} must be [first, cap] in milliseconds, got {value!r}")
    first, cap = (_millis(name, v, zero=zero) for v in value)
    if first > cap:
        raise InvalidLockRetry(f"{name}: the first value {first} is above the cap {cap}")
    return first, cap


def _millis(name: str, value, zero: bool = False) -> int:
    """A whole number of milliseconds PostgreSQL accepts (0 only where `zero`: no sleep)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not (0 if zero else 1) <= value <= MAX_MILLIS:
        low = 0 if zero else 1
        raise InvalidLockRetry(f"{name} must be a whole number of milliseconds from {low} to "
                               f"{MAX_MILLIS}, got {value!r}")
    return int(value)
