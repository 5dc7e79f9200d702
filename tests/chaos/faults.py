"""Faults, injected at random but reproducible moments: the schedule is drawn from
`random.Random(seed)`, so a seed names one sequence of (gap, fault, parameters). What the
faults hit depends on timing, which no seed can fix; what is injected, in which order and how
hard, does not.

The first faults are a seeded permutation of every kind, so each kind lands early in the run
(PostgreSQL is restarted exactly once); after those, the repeatable kinds are drawn at random.
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
from psycopg import sql

from tests.chaos.services import PrivatePostgres
from tests.workers import PrivateRedis, Processes

KILL_WORKER = "kill_worker"
KILL_DEPLOY = "kill_deploy"
RESTART_REDIS = "restart_redis"
TERMINATE_CONNECTIONS = "terminate_connections"
RESTART_POSTGRES = "restart_postgres"
LONG_TRANSACTION = "long_transaction"
ONCE = (RESTART_POSTGRES,)
REPEATABLE = (KILL_WORKER, RESTART_REDIS, TERMINATE_CONNECTIONS, LONG_TRANSACTION, KILL_DEPLOY)
ALL_KINDS = (*REPEATABLE, *ONCE)

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

    first = list(ALL_KINDS)
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
                detail = getattr(self, fault.kind)(**fault.params)
            except Exception as exc:  # a fault that could not be injected is a harness failure
                self.errors.append(f"{fault.kind}: {type(exc).__name__}: {exc}")
                detail = f"NOT INJECTED: {exc}"
            self.log.append(Injected(fault.kind, started, time.monotonic(), detail))

    # -- the faults -------------------------------------------------------------------------

    def kill_worker(self, busy: bool, victim: float, restart_after: float) -> str:
        """SIGKILL a worker: the one working a batch (or run) right now when `busy` and there
        is one, otherwise any; a replacement starts `restart_after` seconds later."""
        workers = sorted(n for n in self.cluster.procs.procs if n.startswith("w"))
        working = self.working_workers() & set(workers) if busy else set()
        candidates = sorted(working) or workers
        name = candidates[int(victim * len(candidates))]
        self.cluster.procs.kill(name, signal.SIGKILL)
        self._halt.wait(restart_after)
        replacement = self.cluster.spawn_worker()
        return (f"SIGKILL {name}{' (mid-work)' if name in working else ''}, started "
                f"{replacement} {restart_after}s later")

    def working_workers(self) -> set[str]:
        """Workers holding a batch or a run's slice, by the names they record ("w1@host/lane0")."""
        with self.cluster.connect() as conn:
            rows = conn.execute(
                "SELECT worker FROM migrations_worker_jobbatch WHERE status = 'running' "
                "UNION SELECT worker FROM migrations_worker_jobrun WHERE status = 'running'"
            ).fetchall()
        return {worker.split("@", 1)[0] for (worker,) in rows if "@" in worker}

    def kill_deploy(self) -> str:
        """SIGKILL the deploy step wherever it is; the pipeline (the harness) runs it again."""
        proc = self.cluster.deploy()
        if proc is None or proc.poll() is not None:
            return "no deploy step running"
        os.killpg(proc.pid, signal.SIGKILL)
        return f"SIGKILL migrate_online (pid {proc.pid})"

    def restart_redis(self, down_for: float) -> str:
        self.cluster.redis.stop()
        time.sleep(down_for)
        self.cluster.redis.start()
        return f"Redis down for {down_for}s (every queued message lost)"

    def terminate_connections(self) -> str:
        with self.cluster.connect() as conn:
            victims = conn.execute(
                "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = ANY(%s)", [[WORKER_APP, DEPLOY_APP]],
            ).fetchall()
        counts = Counter(app for app, _ in victims)
        return "terminated " + (", ".join(f"{n} {app}" for app, n in sorted(counts.items()))
                                or "nothing (no session open)")

    def restart_postgres(self) -> str:
        seconds = self.cluster.pg.restart()
        return f"PostgreSQL restarted (-m fast) in {seconds:.1f}s"

    def long_transaction(self, table: str, mode: str, at: float, hold: float) -> str:
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
            self._halt.wait(hold)
            conn.rollback()
        return f"{what} on {table} held {hold}s"
