"""The live application while a contender runs: a fixed-rate load, a lock-wait sampler, and a
memory sampler for the worker processes.

The load is `seed.live_load.LiveLoad` (the same statements the demo and the tests use, valid in
every phase of the online migration), with four writes added that touch *existing* rows of the
tables the jobs change, as a real application does: an alert edited, an alert firing (its
trigger row reads the alert `FOR SHARE`), an asset edited, a holding of a duplicate asset
edited. Without them no contender could ever block the load, and the contrast between row locks
held for one batch and for one whole transaction would not show.

It runs at a fixed rate rather than flat out, so every phase offers the same traffic and a
blocked statement shows as latency (and a queue), not as fewer statements.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from bench.common import (
    APP_DEPLOY,
    APP_LOAD,
    APP_SAMPLER,
    WORK_APPS,
    cpu_seconds,
    db_url,
    peak_rss_kib,
)
from seed.live_load import LiveLoad

# Duplicate (ticker, exchange) keys, found with one hash aggregate.
# Asset `a` shares its (ticker, exchange) with another asset. A correlated EXISTS, planned as a
# (anti-)join: `NOT IN (the duplicate keys)` becomes a plain subplan once those keys outgrow
# work_mem, rescanned for every asset (at 1M assets it ran for minutes).
DUPLICATED = ("EXISTS (SELECT 1 FROM assets_asset b WHERE b.ticker = a.ticker "
              "AND b.exchange_id = a.exchange_id AND b.id <> a.id)")


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock when the statement was sent
    op: str
    seconds: float
    ok: bool
    pid: int = 0  # the load connection's backend, to match the lock sampler's sightings


# Reference tables the deploy gives soft-delete columns: the load edits a row of each in turn.
REFERENCE_TABLES = ("assets_country", "assets_currency", "assets_sector", "assets_industry")


class BenchLoad(LiveLoad):
    """One connection of the application, sending `rate` statements per second."""

    def __init__(self, url: str, seed: int, rate: float):
        super().__init__(url, seed=seed, pause=0.0)
        self.rate = rate
        self.samples: list[Sample] = []
        self.ready = threading.Event()
        self.crashed: BaseException | None = None

    def _targets(self, conn) -> None:
        super()._targets(conn)
        low, high = conn.execute("SELECT min(id), max(id) FROM investments_alert").fetchone()
        self.alert_ids = (low or 0, high or 0)
        # Spread over the whole key range (a deterministic shuffle), not just the first ids.
        self.editable_assets = [r[0] for r in conn.execute(
            f"SELECT a.id FROM assets_asset a WHERE NOT {DUPLICATED} "  # noqa: S608 - constant text
            "ORDER BY hashint8(a.id) LIMIT 5000")]
        self.dup_holdings = [r[0] for r in conn.execute(
            "SELECT h.id FROM portfolios_holding h JOIN assets_asset a ON a.id = h.asset_id "  # noqa: S608 - constant text
            f"WHERE {DUPLICATED} ORDER BY hashint8(h.id) LIMIT 2000"
        )]
        self.reference = {table: [r[0] for r in conn.execute(
            sql.SQL("SELECT id FROM {} ORDER BY id LIMIT 200").format(sql.Identifier(table)))]
            for table in REFERENCE_TABLES}
        self.articles = [r[0] for r in conn.execute(
            "SELECT id FROM investments_newsarticle ORDER BY hashint8(id) LIMIT 2000")]
        self.benchmarks = [r[0] for r in conn.execute(
            "SELECT id FROM portfolios_benchmark ORDER BY hashint8(id) LIMIT 2000")]
        self.pid = conn.info.backend_pid
        self.writes = 0

    # -- the added writes -------------------------------------------------------------------

    def edit_alert(self, conn) -> None:
        """A user changes an existing alert's threshold."""
        conn.execute(
            "UPDATE investments_alert SET threshold = %s WHERE id = %s",
            [self.random.randint(1, 500), self.random.randint(*self.alert_ids)],
        )

    def fire_alert(self, conn) -> None:
        """An existing alert fires: a trigger row that names it by its integer id."""
        conn.execute(
            "INSERT INTO investments_alerttrigger (alert_id, triggered_at, price, notified) "
            "SELECT id, now(), 1, false FROM investments_alert WHERE id = %s",
            [self.random.randint(*self.alert_ids)],
        )

    def edit_asset(self, conn) -> None:
        conn.execute("UPDATE assets_asset SET updated_at = now() WHERE id = %s",
                     [self.random.choice(self.editable_assets)])

    def edit_duplicate_holding(self, conn) -> None:
        """A holding of a duplicate asset: merged away part-way through (then 0 rows)."""
        if self.dup_holdings:
            conn.execute("UPDATE portfolios_holding SET updated_at = now() WHERE id = %s",
                         [self.random.choice(self.dup_holdings)])

    # -- writes on every other table the deploy alters ---------------------------------------

    def touch_reference(self, conn) -> None:
        """An edit of reference data: a country, currency, sector or industry, in turn."""
        self.writes += 1
        table = REFERENCE_TABLES[self.writes % len(REFERENCE_TABLES)]
        if self.reference[table]:
            conn.execute(sql.SQL("UPDATE {} SET updated_at = now() WHERE id = %s").format(
                sql.Identifier(table)), [self.random.choice(self.reference[table])])

    def touch_article(self, conn) -> None:
        if self.articles:
            conn.execute("UPDATE investments_newsarticle SET updated_at = now() WHERE id = %s",
                         [self.random.choice(self.articles)])

    def touch_benchmark(self, conn) -> None:
        if self.benchmarks:
            conn.execute("UPDATE portfolios_benchmark SET updated_at = now() WHERE id = %s",
                         [self.random.choice(self.benchmarks)])

    def link_article(self, conn) -> None:
        if self.articles:
            conn.execute(
                "INSERT INTO investments_newsarticle_assets (newsarticle_id, asset_id) "
                "VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [self.random.choice(self.articles), self.random.choice(self.editable_assets)])

    def insert_price(self, conn) -> None:
        conn.execute(
            "INSERT INTO assets_assetpriceshistoric (timestamp, open, high, low, close, volume, "
            "asset_id) VALUES (clock_timestamp(), 1, 1, 1, 1, 1, %s)",
            [self.random.choice(self.editable_assets)])

    # -- the loop ---------------------------------------------------------------------------

    def halt(self) -> None:
        """Ask the loop to end after the statement in flight, without waiting for it."""
        self._halt.set()

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                self._targets(conn)
                self.ready.set()
                self._loop(conn)
        except BaseException as exc:  # reported by the orchestrator, not lost in a thread
            self.crashed = exc
            self.ready.set()

    def _loop(self, conn) -> None:
        ops = [self.insert_alert, self.edit_alert, self.touch_holding, self.read_asset,
               self.fire_alert, self.insert_watch, self.edit_asset, self.read_portfolio,
               self.insert_trigger, self.edit_duplicate_holding, self.insert_asset,
               self.touch_reference, self.touch_article, self.touch_benchmark,
               self.link_article, self.insert_price]
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        n = self.random.randrange(len(ops))
        while not self._halt.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._halt.wait(delay):
                return
            op = ops[n % len(ops)]
            n += 1
            wall, started, ok = time.time(), time.monotonic(), True
            try:
                op(conn)
            except psycopg.Error as exc:
                ok = False
                self.result.errors.append(f"{op.__name__}: {type(exc).__name__}: {exc}")
            seconds = time.monotonic() - started
            self.result.record(op.__name__, seconds)
            self.samples.append(Sample(wall, op.__name__, seconds, ok, self.pid))
            next_at += interval
            # After a long block, resume the schedule instead of bursting to catch up.
            next_at = max(next_at, time.monotonic() - 1.0)


@dataclass
class LockWait:
    first_seen: float
    seconds: float
    query: str
    blockers: set[str] = field(default_factory=set)
    pid: int = 0
    started: float = 0.0  # the waiting statement's query_start (wall clock)
    # What the deploy's session was running while it held the load up (the DDL step).
    deploy_queries: set[str] = field(default_factory=set)

    @property
    def by_work(self) -> bool:
        """Blocked by the migration's work (a batch, or the single transaction)."""
        return bool(self.blockers & set(WORK_APPS))

    @property
    def by_deploy(self) -> bool:
        """Blocked by a deploy step's DDL."""
        return APP_DEPLOY in self.blockers


class CpuLog:
    """Readings of cumulative CPU per process over time, and what was used inside a window."""

    def __init__(self):
        self.readings: dict[int, list[tuple[float, float]]] = {}

    def read(self, pid: int, at: float | None = None) -> None:
        seconds = cpu_seconds(pid)
        if seconds is not None:
            self.readings.setdefault(pid, []).append((at or time.time(), seconds))

    def used(self, start: float, end: float, born_inside: bool = True) -> float:
        """CPU used between `start` and `end`. A process first seen after `start` was born
        inside the window (a new database session): all its CPU counts, unless `born_inside`
        is False (a process started before, like a worker: only its readings count)."""
        total = 0.0
        for readings in self.readings.values():
            before = [cpu for at, cpu in readings if at <= start]
            inside = [cpu for at, cpu in readings if at <= end + 0.1]
            if not inside:
                continue
            if before:
                baseline = before[-1]
            elif born_inside:
                baseline = 0.0
            else:
                baseline = inside[0]
            total += max(0.0, inside[-1] - baseline)
        return total


class LockSampler(threading.Thread):
    """Every 50 ms: which load statements wait for a lock, since when, and who holds it; and
    how much CPU the database sessions doing the job's work have used."""

    WORKERS = """
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = ANY(%s)
    """

    QUERY = """
        SELECT w.pid, w.query_start, extract(epoch FROM clock_timestamp() - w.query_start),
               left(w.query, 120),
               ARRAY(SELECT coalesce(nullif(b.application_name, ''), b.backend_type)
                     FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid))),
               extract(epoch FROM w.query_start),
               ARRAY(SELECT left(regexp_replace(b.query, '\\s+', ' ', 'g'), 160)
                     FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid))
                       AND b.application_name = %s)
        FROM pg_stat_activity w
        WHERE w.datname = current_database() AND w.application_name = %s
          AND w.wait_event_type = 'Lock'
    """

    def __init__(self, database: str, interval: float = 0.05):
        super().__init__(daemon=True)
        self.url = db_url(database, APP_SAMPLER)
        self.interval = interval
        self.waits: dict[tuple[int, object], LockWait] = {}
        self.server_cpu = CpuLog()
        self._halt = threading.Event()
        self.crashed: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self._halt.wait(self.interval):
                    now = time.time()
                    for (pid,) in conn.execute(self.WORKERS, [[*WORK_APPS, APP_DEPLOY]]):
                        self.server_cpu.read(pid, now)
                    for pid, since, seconds, query, blockers, started, deploy in conn.execute(
                            self.QUERY, [APP_DEPLOY, APP_LOAD]):
                        wait = self.waits.setdefault((pid, since), LockWait(
                            time.time() - float(seconds), 0.0, query, pid=pid,
                            started=float(started)))
                        wait.seconds = max(wait.seconds, float(seconds))
                        wait.blockers |= set(blockers)
                        wait.deploy_queries |= set(deploy)
        except BaseException as exc:
            self.crashed = exc

    def halt(self) -> None:
        self._halt.set()

    def stop(self) -> list[LockWait]:
        self.halt()
        self.join(timeout=10)
        return list(self.waits.values())


class MemorySampler(threading.Thread):
    """The peak resident memory (VmHWM) of each watched process, read until it exits."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.cpu = CpuLog()
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self.pids[name] = pid
            self.cpu.read(pid)

    def sample(self) -> None:
        with self._lock:
            for name, pid in self.pids.items():
                kib = peak_rss_kib(pid)
                if kib is not None:
                    self.peaks[name] = max(self.peaks.get(name, 0), kib)
                self.cpu.read(pid)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, int]:
        self.sample()
        self._halt.set()
        self.join(timeout=5)
        return dict(self.peaks)


class Traffic:
    """The load's connections and the lock sampler on one database, started and stopped together."""

    def __init__(self, database: str, rate: float, connections: int = 2, seed: int = 1):
        url = db_url(database, APP_LOAD)
        self.loads = [BenchLoad(url, seed=seed + i, rate=rate / connections)
                      for i in range(connections)]
        self.sampler = LockSampler(database)

    def start(self) -> None:
        for load in self.loads:
            load.start()
        for load in self.loads:
            load.ready.wait(120)
            if load.crashed:
                raise RuntimeError(f"the live load could not start: {load.crashed}") from load.crashed
        self.sampler.start()

    def abort(self) -> None:
        """After a failure: let the threads end on their own (harmless after `stop`)."""
        self.sampler.halt()
        for load in self.loads:
            load.halt()

    def stop(self) -> tuple[list[Sample], list[str], list[LockWait], CpuLog]:
        waits = self.sampler.stop()
        samples: list[Sample] = []
        errors: list[str] = []
        for load in self.loads:
            load.stop()
            if load.crashed:
                raise RuntimeError(f"the live load crashed: {load.crashed}") from load.crashed
            samples += load.samples
            errors += load.result.errors
        if self.sampler.crashed:
            raise RuntimeError(f"the lock sampler crashed: {self.sampler.crashed}")
        samples.sort(key=lambda s: s.at)
        return samples, errors, waits, self.sampler.server_cpu


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency that really happened)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def latency_summary(samples: list[Sample], start: float, end: float) -> dict:
    return windows_summary(samples, [(start, end)])


def windows_summary(samples: list[Sample], windows: list[tuple[float, float]]) -> dict:
    """The statements sent inside any of the (start, end) windows (by the time each was sent):
    a fleet database's load over its own deploy runs, which lie apart."""
    inside = [s for s in samples if any(start <= s.at < end for start, end in windows)]
    values = [s.seconds for s in inside]
    seconds = sum(end - start for start, end in windows)
    return {
        "statements": len(inside),
        "errors": sum(not s.ok for s in inside),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values, default=0.0) * 1000,
        "per_second": len(inside) / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
    }


def blocked_samples(samples: list[Sample], waits: list[LockWait]) -> list[tuple[Sample, LockWait]]:
    """Each load statement the sampler saw waiting for a lock, with that wait: its whole latency
    (measured by the load, to the millisecond) is then the time a lock held it up, and the wait
    says whose lock (a statement that waited less than the sampler's 50 ms may go unseen)."""
    by_pid: dict[int, list[LockWait]] = {}
    for wait in waits:
        by_pid.setdefault(wait.pid, []).append(wait)
    found = []
    for sample in samples:
        for wait in by_pid.get(sample.pid, ()):
            if sample.at - 0.05 <= wait.started <= sample.at + sample.seconds:
                found.append((sample, wait))
                break
    return found


def lock_summary(waits: list[LockWait], start: float, end: float) -> dict:
    window = [w for w in waits if start - 1 <= w.first_seen < end]
    by_work = [w for w in window if w.by_work]
    return {
        "lock_waits": len(window),
        "lock_waits_on_work": len(by_work),
        "max_lock_wait_ms": max((w.seconds for w in window), default=0.0) * 1000,
        "max_lock_wait_on_work_ms": max((w.seconds for w in by_work), default=0.0) * 1000,
        "lock_waits_on_work_over_200ms": sum(w.seconds > 0.2 for w in by_work),
        "blockers": sorted({b for w in window for b in w.blockers}),
    }
