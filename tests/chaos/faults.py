"""Faults, injected at random but reproducible moments: the schedule is drawn from
`random.Random(seed)`, so a seed names one sequence of (gap, fault, parameters). What the
faults hit depends on timing, which no seed can fix; what is injected, in which order and how
hard, does not.

The first fault kills a worker whose batch has written and not committed (a row lock makes the
batch wait right after its first write, so the kill lands there, every seed); then a seeded
permutation of every other kind, so each lands early in the run (PostgreSQL is restarted exactly
once); after those, the repeatable kinds are drawn at random.

Every fault records what it hit: the batch a killed worker held, the sessions terminated, the
messages a Redis restart lost, the sessions that waited on a long transaction... or that it hit
nothing (a deploy kill between two stages, an idle worker). Counted by what they hit, not by
what was tried.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import redis
from psycopg import sql

from tests.chaos.services import PrivatePostgres
from tests.workers import PrivateRedis, Processes

KILL_WORKER_AFTER_WRITE = "kill_worker_after_write"
KILL_WORKER = "kill_worker"
KILL_DEPLOY = "kill_deploy"
RESTART_REDIS = "restart_redis"
TERMINATE_CONNECTIONS = "terminate_connections"
RESTART_POSTGRES = "restart_postgres"
LONG_TRANSACTION = "long_transaction"
ONCE = (RESTART_POSTGRES,)
REPEATABLE = (KILL_WORKER, RESTART_REDIS, TERMINATE_CONNECTIONS, LONG_TRANSACTION, KILL_DEPLOY)
ALL_KINDS = (KILL_WORKER_AFTER_WRITE, *REPEATABLE, *ONCE)

# application_name of each kind of session, so a fault can pick its victims.
WORKER_APP, DEPLOY_APP, LOAD_APP, BLOCKER_APP = "chaos-worker", "chaos-deploy", "chaos-load", "chaos-blocker"
# Tables the online migration alters, indexes or walks; a long transaction holds one of them.
TABLES_MIGRATIONS_NEED = (
    "investments_alert", "investments_alerttrigger", "assets_asset", "portfolios_holding",
    "investments_watchlist", "assets_assetpriceshistoric",
)


@dataclass(frozen=True)
class Fault:
    kind: str
    gap: float  # seconds after the previous fault ended
    params: dict = field(default_factory=dict)


def plan(seed: int, gaps: tuple[float, float]) -> Iterator[Fault]:
    """The endless, seeded fault sequence of a run."""
    rng = random.Random(seed)

    def draw(kind: str) -> Fault:
        gap = round(rng.uniform(*gaps), 2)
        if kind == KILL_WORKER:
            return Fault(kind, gap, {"busy": rng.random() < 0.7, "victim": rng.random(),
                                     "restart_after": round(rng.uniform(0, 2), 2)})
        if kind == KILL_WORKER_AFTER_WRITE:
            return Fault(kind, gap, {"ahead": rng.randint(1, 3),
                                     "restart_after": round(rng.uniform(0, 2), 2)})
        if kind == RESTART_REDIS:
            return Fault(kind, gap, {"down_for": round(rng.uniform(0.5, 3), 2)})
        if kind == LONG_TRANSACTION:
            return Fault(kind, gap, {
                "table": rng.choice(TABLES_MIGRATIONS_NEED),
                "mode": rng.choice(["read", "write"]),
                "at": round(rng.random(), 3),  # where in the key range the row lock sits
                "hold": round(rng.uniform(2, 8), 2),
            })
        return Fault(kind, gap, {})

    yield draw(KILL_WORKER_AFTER_WRITE)
    first = [*REPEATABLE, *ONCE]
    rng.shuffle(first)
    for kind in first:
        yield draw(kind)
    while True:
        yield draw(rng.choice(REPEATABLE))


@dataclass
class Injected:
    kind: str
    started: float  # time.monotonic()
    ended: float
    detail: str
    hit: bool  # whether it hit anything (a batch, a session, a message, a waiting statement)


@dataclass
class Cluster:
    """What the faults act on: the private servers, the Celery processes, the database."""

    pg: PrivatePostgres
    redis: PrivateRedis
    procs: Processes
    database: str
    spawn_worker: Callable[[], str]
    deploy: Callable[[], subprocess.Popen | None]  # the deploy step running now, if any

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.pg.url(self.database), autocommit=True,
                               application_name=BLOCKER_APP, connect_timeout=5)


class Injector(threading.Thread):
    """Injects the seed's faults one after another until stopped; keeps a log of each."""

    def __init__(self, cluster: Cluster, seed: int, gaps: tuple[float, float]):
        super().__init__(daemon=True, name="chaos-injector")
        self.cluster = cluster
        self.faults = plan(seed, gaps)
        self.log: list[Injected] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> list[Injected]:
        self._halt.set()
        self.join(timeout=120)
        assert not self.is_alive(), "the fault injector did not stop"
        return self.log

    def run(self) -> None:
        for fault in self.faults:
            if self._halt.wait(fault.gap):
                return
            started = time.monotonic()
            try:
                detail, hit = getattr(self, fault.kind)(**fault.params)
            except Exception as exc:  # a fault that could not be injected is a harness failure
                self.errors.append(f"{fault.kind}: {type(exc).__name__}: {exc}")
                detail, hit = f"NOT INJECTED: {exc}", False
            self.log.append(Injected(fault.kind, started, time.monotonic(), detail, hit))

    # -- the faults -------------------------------------------------------------------------

    def kill_worker(self, busy: bool, victim: float, restart_after: float) -> tuple[str, bool]:
        """SIGKILL a worker: the one working a batch (or run) right now when `busy` and there
        is one, otherwise any; a replacement starts `restart_after` seconds later."""
        workers = sorted(n for n in self.cluster.procs.procs if n.startswith("w"))
        working = self.working_workers()
        candidates = sorted(working.keys() & set(workers)) if busy else []
        name = (candidates or workers)[int(victim * len(candidates or workers))]
        self.cluster.procs.kill(name, signal.SIGKILL)
        self._halt.wait(restart_after)
        replacement = self.cluster.spawn_worker()
        held = working.get(name)
        return (f"SIGKILL {name} ({f'holding {held}' if held else 'idle: hit nothing'}), started "
                f"{replacement} {restart_after}s later"), held is not None

    def working_workers(self) -> dict[str, str]:
        """Workers holding a batch or a run's slice, by the names they record ("w1@host/lane0"),
        and what each holds."""
        with self.cluster.connect() as conn:
            rows = conn.execute(
                "SELECT worker, format('batch (%s, %s] of run %s', start_key, end_key, run_id) "
                "FROM migrations_worker_jobbatch WHERE status = 'running' "
                "UNION ALL SELECT worker, format('a slice of run %s', id) "
                "FROM migrations_worker_jobrun WHERE status = 'running'"
            ).fetchall()
        held: dict[str, str] = {}
        for worker, what in rows:
            if "@" in worker:
                held.setdefault(worker.split("@", 1)[0], what)
        return held

    def kill_worker_after_write(self, ahead: int, restart_after: float) -> tuple[str, bool]:
        """SIGKILL a worker whose batch has written and not committed. `alerts_uuid` writes the
        UUIDs of its range's alerts, then their trigger rows: a trigger row locked here, `ahead`
        batches past the run's cursor, stops the batch that reaches it right after its first
        write; that worker is killed, the lock released, and the batch must be redone, once."""
        deadline = time.monotonic() + 60
        while not self._halt.is_set() and time.monotonic() < deadline:
            with self.cluster.connect() as conn:
                run = conn.execute("SELECT id, cursor, batch_size FROM migrations_worker_jobrun "
                                   "WHERE job_name = 'alerts_uuid' AND status = 'running' "
                                   "AND cursor < max_key").fetchone()
                if run is None:
                    self._halt.wait(0.2)
                    continue
                run_id, cursor, size = run
                conn.autocommit = False
                row = conn.execute(
                    "SELECT id, alert_id FROM investments_alerttrigger WHERE alert_id > %s "
                    "ORDER BY alert_id LIMIT 1 FOR UPDATE", [cursor + ahead * size]).fetchone()
                if row is None:
                    return "no trigger row ahead of alerts_uuid's cursor: hit nothing", False
                victim = self.wait_for_written_batch(run_id, row[1])
                if victim is None:
                    conn.rollback()
                    continue
                name, batch = victim
                self.cluster.procs.kill(name, signal.SIGKILL)
                conn.rollback()
            self._halt.wait(restart_after)
            replacement = self.cluster.spawn_worker()
            return (f"SIGKILL {name} holding {batch}, written and uncommitted (alerts given their "
                    f"UUIDs, waiting on trigger row {row[0]}); started {replacement} "
                    f"{restart_after}s later"), True
        return "alerts_uuid was not running: hit nothing", False

    def wait_for_written_batch(self, run_id: int, alert: int) -> tuple[str, str] | None:
        """The worker of the batch over `alert` once it waits on the lock having written (its
        session holds a transaction id), within 15 s."""
        deadline = time.monotonic() + 15
        with self.cluster.connect() as conn:
            while time.monotonic() < deadline and not self._halt.is_set():
                row = conn.execute(
                    "SELECT b.worker, b.start_key, b.end_key FROM migrations_worker_jobbatch b "
                    "WHERE b.run_id = %s AND b.status = 'running' AND b.start_key < %s "
                    "AND b.end_key >= %s AND EXISTS (SELECT 1 FROM pg_stat_activity a "
                    "WHERE a.datname = current_database() AND a.application_name = %s "
                    "AND a.wait_event_type = 'Lock' AND a.backend_xid IS NOT NULL)",
                    [run_id, alert, alert, WORKER_APP]).fetchone()
                if row is not None and "@" in row[0]:
                    return row[0].split("@", 1)[0], f"batch ({row[1]}, {row[2]}] of run {run_id}"
                time.sleep(0.05)
        return None

    def kill_deploy(self) -> tuple[str, bool]:
        """SIGKILL the deploy step wherever it is; the pipeline (the harness) runs it again."""
        proc = self.cluster.deploy()
        if proc is None or proc.poll() is not None:
            return "no deploy step running: hit nothing", False
        os.killpg(proc.pid, signal.SIGKILL)
        return f"SIGKILL migrate_online (pid {proc.pid})", True

    def restart_redis(self, down_for: float) -> tuple[str, bool]:
        broker = redis.Redis.from_url(self.cluster.redis.url)
        queued, clients = broker.llen("migrations"), len(broker.client_list()) - 1
        self.cluster.redis.stop()
        time.sleep(down_for)
        self.cluster.redis.start()
        return (f"Redis down for {down_for}s: {queued} queued message(s) lost, {clients} "
                "connection(s) dropped"), bool(queued or clients)

    def terminate_connections(self) -> tuple[str, bool]:
        with self.cluster.connect() as conn:
            victims = conn.execute(
                "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = ANY(%s)", [[WORKER_APP, DEPLOY_APP]],
            ).fetchall()
        counts = Counter(app for app, _ in victims)
        return "terminated " + (", ".join(f"{n} {app}" for app, n in sorted(counts.items()))
                                or "no session open: hit nothing"), bool(victims)

    def restart_postgres(self) -> tuple[str, bool]:
        seconds = self.cluster.pg.restart()
        return f"PostgreSQL restarted (-m fast) in {seconds:.1f}s", True

    def long_transaction(self, table: str, mode: str, at: float, hold: float) -> tuple[str, bool]:
        with self.cluster.connect() as conn:
            conn.autocommit = False
            t = sql.Identifier(table)
            if mode == "read":  # a long report: ACCESS SHARE, which every ALTER must wait out
                conn.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1000) s").format(t))
                what = "ACCESS SHARE"
            else:  # a long write: a row lock a batch may need, and ROW EXCLUSIVE on the table
                row = conn.execute(sql.SQL(
                    "SELECT id FROM {t} WHERE id >= (SELECT min(id) + (max(id) - min(id)) * %s "
                    "FROM {t}) ORDER BY id LIMIT 1 FOR UPDATE").format(t=t), [at]).fetchone()
                what = f"row {row[0] if row else '-'} FOR UPDATE"
            pid = conn.info.backend_pid
            waited = 0
            deadline = time.monotonic() + hold
            with self.cluster.connect() as watcher:
                while not self._halt.wait(min(0.25, max(0.0, deadline - time.monotonic()))):
                    waited = max(waited, watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                        [pid]).fetchone()[0])
                    if time.monotonic() >= deadline:
                        break
            conn.rollback()
        effect = f"{waited} session(s) waited on it" if waited else "nobody waited: hit nothing"
        return f"{what} on {table} held {hold}s; {effect}", waited > 0
