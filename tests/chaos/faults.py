"""Faults, injected at random but reproducible moments: the schedule is drawn from
`random.Random(seed)`, so a seed names one sequence of (gap, fault, parameters). What the
faults hit depends on timing, which no seed can fix; what is injected, in which order and how
hard, does not.

The first fault kills a worker whose batch has written and not committed (a row lock makes the
batch wait right after its first write, so the kill lands there, every seed); then a seeded
permutation of every other kind, so each lands early in the run (PostgreSQL is restarted exactly
once); after those, the repeatable kinds are drawn at random.

A fault meant for work in flight waits for it (a few seconds at most) instead of landing
wherever the clock says: a "busy" worker kill waits for a worker to be inside a batch, a long
write locks a row a few batches ahead of a running job's cursor, and a long report takes its
lock on the table of a job about to finish, whose gated migration the deploy applies next. Left
to the clock they hit 0 of 7 (long transactions) and 2 of 5 (worker kills) over the three seeds:
the batch is over between two polls, the table is one no job or step touches at that moment.

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
# The jobs keyed by their table's id (cursor and batch bounds are ids of it): a long write
# locks a row of it ahead of the job's cursor.
KEYED_BY_ID = {"alerts_uuid": "investments_alert", "legacy_columns": "assets_asset"}
# The job the pre stage waits for last, and the table its gated migration alters once it is
# done (investments 0006: ACCESS EXCLUSIVE); a long report holds that table near the job's end.
ALTERED_AFTER = {"alerts_uuid": "investments_alert"}
# A batch whose worker vanished on every attempt (3 by default) fails its run, as a batch that
# kills its worker would; so a busy kill only takes a batch on its first attempt (the kill after
# a write and terminated sessions take attempts too), never three of one batch in a row.
SPARED_ATTEMPT = 2
# How long a fault waits for the work it is meant for before it lands anyway (and may miss).
IN_FLIGHT_WAIT_S = 20.0
# A long report holds its lock this long at most once a step waits on it (so the step backs off
# and asks again), or until the step is out of sight.
REPORT_CAP_S = 30.0


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
                "mode": rng.choice(["read", "write"]),
                "ahead": rng.randint(1, 3),  # batches past the cursor a long write locks its row
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
        self._reports: list[threading.Thread] = []  # long reports waiting for their moment

    def stop(self) -> list[Injected]:
        self._halt.set()
        self.join(timeout=120)
        for report in self._reports:
            report.join(timeout=60)
        assert not self.is_alive() and not any(r.is_alive() for r in self._reports), (
            "the fault injector did not stop")
        return sorted(self.log, key=lambda injected: injected.started)

    def run(self) -> None:
        for fault in self.faults:
            if self._halt.wait(fault.gap):
                return
            started = time.monotonic()
            try:
                outcome = getattr(self, fault.kind)(**fault.params)
            except Exception as exc:  # a fault that could not be injected is a harness failure
                self.errors.append(f"{fault.kind}: {type(exc).__name__}: {exc}")
                outcome = f"NOT INJECTED: {exc}", False
            if outcome is not None:  # None: armed, it logs itself when it has landed
                self.log.append(Injected(fault.kind, started, time.monotonic(), *outcome))

    # -- the faults -------------------------------------------------------------------------

    def kill_worker(self, busy: bool, victim: float, restart_after: float) -> tuple[str, bool]:
        """SIGKILL a worker: when `busy`, one caught inside a batch (waited for, up to
        IN_FLIGHT_WAIT_S), otherwise any; a replacement starts `restart_after` seconds later.
        It hit if a batch it held is left running in its name: killed before it committed."""
        with self.cluster.connect() as conn:
            caught = self.worker_in_a_batch(conn) if busy else None
            workers = sorted(n for n in self.cluster.procs.procs if n.startswith("w"))
            name = caught or workers[int(victim * len(workers))]
            self.cluster.procs.kill(name, signal.SIGKILL)
            held = self.batches_held(conn).get(name)
        self._halt.wait(restart_after)
        replacement = self.cluster.spawn_worker()
        return (f"SIGKILL {name} ({f'holding {held}' if held else 'idle: hit nothing'}), started "
                f"{replacement} {restart_after}s later"), held is not None

    def worker_in_a_batch(self, conn: psycopg.Connection) -> str | None:
        """A live worker inside a batch on its first attempt, polled for: a batch of the
        small size is over in a few tens of milliseconds, then its worker pauses
        (pause_seconds) before the next."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_S
        while time.monotonic() < deadline and not self._halt.is_set():
            alive = set(self.cluster.procs.procs)
            busy = sorted(name for name in self.batches_held(conn, SPARED_ATTEMPT) if name in alive)
            if busy:
                return busy[0]
            time.sleep(0.01)
        return None

    @staticmethod
    def batches_held(conn: psycopg.Connection, below_attempts: int | None = None) -> dict[str, str]:
        """The batches running now, by the name of the worker holding each ("w1@host/lane0"
        records w1): a dead worker's batch stays running in its name until its lease is over.
        With `below_attempts`, only batches on an earlier attempt than that."""
        rows = conn.execute(
            "SELECT worker, format('batch (%%s, %%s] of run %%s', start_key, end_key, run_id) "
            "FROM migrations_worker_jobbatch WHERE status = 'running' AND worker LIKE '%%@%%' "
            "AND (%s::int IS NULL OR attempts < %s::int)", [below_attempts, below_attempts]
        ).fetchall()
        return {worker.split("@", 1)[0]: what for worker, what in rows}

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

    def long_transaction(self, mode: str, ahead: int, hold: float) -> tuple[str, bool] | None:
        """A long write: a row lock `ahead` batches past a running job's cursor, on its table,
        held `hold` seconds; the job's batch reaching it waits. A long report (ACCESS SHARE,
        which every ALTER must wait out) is armed here and runs on a thread of its own once the
        job the deploy waits for is about to finish (`long_report`), so that the next faults
        land meanwhile; it is logged when it ends."""
        if mode == "read":
            report = threading.Thread(target=self.long_report, args=(hold, time.monotonic()),
                                      daemon=True, name="chaos-long-report")
            self._reports.append(report)
            report.start()
            return None
        with self.cluster.connect() as conn:
            conn.autocommit = False
            run = self.wait_for_run(conn, KEYED_BY_ID, "cursor < max_key")
            if run is None:
                conn.rollback()
                return "no job keyed by id running: hit nothing", False
            job, cursor, size, _ = run
            table = sql.Identifier(KEYED_BY_ID[job])
            row = conn.execute(sql.SQL("SELECT id FROM {} WHERE id > %s ORDER BY id LIMIT 1 "
                                       "FOR UPDATE").format(table), [cursor + ahead * size]).fetchone()
            waited = self.hold_watched(conn, hold)
        what = (f"row {row[0]} of {KEYED_BY_ID[job]} FOR UPDATE ({job}'s cursor {cursor})" if row
                else f"ROW SHARE on {KEYED_BY_ID[job]} (no row {ahead} batch(es) past {job}'s "
                     f"cursor {cursor})")
        effect = f"{waited} session(s) waited on it" if waited else "nobody waited: hit nothing"
        return f"{what} held {hold}s; {effect}", waited > 0

    def long_report(self, hold: float, armed: float) -> None:
        """The read mode's thread: once the job in ALTERED_AFTER has at most two batches to go,
        ACCESS SHARE on the table its gated migration alters, held until a session waits on it
        and `hold` seconds more (REPORT_CAP_S at most). A connection lost while it waits (a
        PostgreSQL restart) is made again; lost while it holds, what it saw is its record."""
        started, waited, what = armed, 0, "no job about to finish"
        try:
            while not self._halt.is_set():
                try:
                    with self.cluster.connect() as conn:
                        conn.autocommit = False
                        run = self.wait_for_run(conn, ALTERED_AFTER,
                                                "cursor + 2 * batch_size >= max_key", timeout=None)
                        if run is not None:
                            started = time.monotonic()
                            table = ALTERED_AFTER[run[0]]
                            conn.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1000) s")
                                         .format(sql.Identifier(table)))
                            what = f"ACCESS SHARE on {table} ({run[0]} at {run[1]} of {run[3]})"
                            waited = self.hold_watched(conn, hold, until_waited=REPORT_CAP_S)
                    break
                except psycopg.OperationalError as exc:
                    if started != armed:  # lost while holding: what it saw is its record
                        what += f", connection lost ({str(exc).strip()[:80]})"
                        break
                    self._halt.wait(0.5)  # lost while waiting (PostgreSQL restarted): again
        except Exception as exc:  # as the injector's own loop: a harness failure
            self.errors.append(f"{LONG_TRANSACTION}: {type(exc).__name__}: {exc}")
            what = f"NOT INJECTED: {exc}"
        effect = f"{waited} session(s) waited on it" if waited else "nobody waited: hit nothing"
        self.log.append(Injected(LONG_TRANSACTION, started, time.monotonic(),
                                 (f"report (armed {started - armed:.1f}s before): {what}; {effect}"
                                  if started != armed else f"report armed: {what}; {effect}"),
                                 waited > 0))

    def wait_for_run(self, conn: psycopg.Connection, jobs: dict[str, str], condition: str,
                     timeout: float | None = IN_FLIGHT_WAIT_S) -> tuple | None:
        """(job, cursor, batch size, max key) of a running run of one of `jobs` meeting
        `condition` (SQL over the run's columns), waited for `timeout` seconds (None: until the
        injector stops)."""
        query = sql.SQL("SELECT job_name, cursor, batch_size, max_key FROM migrations_worker_jobrun "
                        "WHERE status = 'running' AND job_name = ANY(%s) AND {} ORDER BY id LIMIT 1"
                        ).format(sql.SQL(condition))
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._halt.is_set() and (deadline is None or time.monotonic() < deadline):
            run = conn.execute(query, [list(jobs)]).fetchone()
            conn.rollback()  # no snapshot kept while polling: the lock comes after
            if run is not None:
                return run
            self._halt.wait(0.05)
        return None

    def hold_watched(self, conn: psycopg.Connection, hold: float,
                     until_waited: float | None = None) -> int:
        """Keep `conn`'s transaction open `hold` seconds (or, with `until_waited`, until a
        session waits on it and `hold` seconds more, `until_waited` at most), then roll it back;
        how many sessions waited on it at once, at most."""
        pid, waited = conn.info.backend_pid, 0
        start = time.monotonic()
        deadline = start + (until_waited if until_waited is not None else hold)
        with self.cluster.connect() as watcher:
            while not self._halt.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                now_waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    [pid]).fetchone()[0]
                if now_waiting and not waited and until_waited is not None:
                    deadline = min(deadline, time.monotonic() + hold)
                waited = max(waited, now_waiting)
                if time.monotonic() >= deadline:
                    break
        conn.rollback()
        return waited
