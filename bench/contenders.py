"""The contenders: each does one data job on its own copy of the prepared database, and says how
many rows it did, how long it took, and the most memory its worker process ever held.

A contender that needs long-lived processes (Celery workers) starts them in `start`, before the
idle pre-roll of the live load, and stops them in `stop`; `run` is the timed part.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery import Celery
from psycopg import sql

from assets.jobs.legacy_columns import LegacyColumns
from assets.jobs.ticker_dedup import TickerDedup
from bench import single_sql
from bench.common import (
    APP_CLI,
    APP_CONTENDER,
    APP_ENGINE,
    BROKER_URL,
    NAIVE_DONE_KEY,
    NAIVE_QUEUE,
    NAIVE_TASK,
    ROOT,
    connect,
    django_env,
    wait_until,
)
from bench.databases import Templates, manage
from bench.load import MemorySampler
from investments.jobs.alerts_uuid import ASSIGN_UUIDS, COPY_TO_TRIGGERS
from investments.jobs.alerts_uuid import REMAINING as ALERTS_REMAINING
from migrations_worker.runs import eta

CELERY = [sys.executable, "-m", "celery"]


@dataclass
class Outcome:
    rows: int
    seconds: float
    peak_rss_kib: int | None = None
    details: dict = field(default_factory=dict)
    # Wall-clock start and end of the work itself, when the contender knows them better than
    # the orchestrator (a subprocess's start-up, a run's dispatch); the load is judged inside.
    window: tuple[float, float] | None = None
    # CPU the contender's own client process(es) used for the work, when it measures it itself
    # (otherwise the orchestrator reads it from the processes it watches).
    client_cpu: float | None = None


# -- processes ------------------------------------------------------------------------------------


class Process:
    """A subprocess in its own session, logging to a file; stopped by its own process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, marker: str = " ready.", timeout: float = 90) -> None:
        def ready() -> bool:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            return marker in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout, 0.2, f"{self.name} to be ready")

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


def flush_broker() -> None:
    """Empty the benchmark's own Redis database: a message left by a run on an earlier copy must
    never reach a run with the same id on this one."""
    redis.Redis.from_url(BROKER_URL).flushdb()


def engine_worker(database: str, name: str, logs: Path) -> Process:
    return Process(name, [
        *CELERY, "-A", "migrations_worker", "worker", "-Q", "migrations", "--pool", "solo",
        "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-l", "INFO",
    ], django_env(database, application=APP_ENGINE, log_level="INFO"), logs)


def beat(database: str, logs: Path) -> Process:
    return Process("beat", [
        *CELERY, "-A", "migrations_worker", "beat", "-s", str(logs / "celerybeat-schedule"),
        "-l", "INFO",
    ], django_env(database, application=APP_ENGINE, log_level="INFO"), logs)


# -- the contenders --------------------------------------------------------------------------------


class Contender:
    key: str  # short, unique: names the database copy and the log files
    label: str
    job: str  # alerts_uuid | legacy_columns | ticker_dedup
    template: str  # which Templates attribute it starts from
    note: str = ""

    def start(self, database: str, logs: Path, memory: MemorySampler) -> None:
        """Start long-lived processes; the idle pre-roll of the load runs after this."""

    def run(self, database: str, logs: Path, memory: MemorySampler) -> Outcome:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop what `start` started."""


class OrmLoop(Contender):
    job, template = "alerts_uuid", "alerts"

    def __init__(self, templates: Templates, limit: int | None):
        self.key = "orm_loop"
        self.label = "Django RunPython loop, save(update_fields)"
        self.limit = min(limit or templates.alerts_total, templates.alerts_total)
        if self.limit < templates.alerts_total:
            self.note = (f"first {self.limit:,} alerts of {templates.alerts_total:,} "
                         "(the whole table would take too long); rows/s from that subset")

    def run(self, database: str, logs: Path, memory: MemorySampler) -> Outcome:
        with connect(database) as conn:
            low = conn.execute("SELECT min(id) FROM investments_alert").fetchone()[0]
        self.upto = low + self.limit - 1
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.orm_loop", "--upto", str(self.upto)], cwd=ROOT,
            env=django_env(database, application=APP_CONTENDER), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        memory.watch("orm_loop", process.pid)
        out, err = process.communicate(timeout=7200)
        if process.returncode != 0:
            raise RuntimeError(f"bench.orm_loop failed:\n{out[-2000:]}\n{err[-3000:]}")
        report = json.loads(out.strip().splitlines()[-1])
        return Outcome(rows=report["rows"], seconds=report["seconds"],
                       peak_rss_kib=report["peak_rss_kib"], client_cpu=report["cpu_seconds"],
                       details={"alerts_seconds": report["alerts_seconds"],
                                "references": report["references"], "upto": self.upto},
                       window=tuple(report["window"]))


class SingleTransaction(Contender):
    """One of the set-based SQL versions of bench/single_sql.py, run from this process."""

    LABELS = {
        "alerts_uuid": "single UPDATE ... WHERE uuid IS NULL (one transaction)",
        "legacy_columns": "single-transaction SQL",
        "ticker_dedup": "single-transaction SQL (set-based merge)",
    }
    TEMPLATES = {"alerts_uuid": "alerts", "legacy_columns": "legacy", "ticker_dedup": "dedup"}

    def __init__(self, job: str):
        self.job = job
        self.key = f"single_{job}"
        self.label = self.LABELS[job]
        self.template = self.TEMPLATES[job]

    def run(self, database: str, logs: Path, memory: MemorySampler) -> Outcome:
        with connect(database, APP_CONTENDER) as conn:
            conn.execute("SET statement_timeout = 0")
            report = getattr(single_sql, self.job)(conn)
        return Outcome(rows=report.pop("rows"), seconds=report.pop("seconds"), details=report)


class BareLoop(Contender):
    """The alerts job's own two statements over fixed key ranges, a commit per range, on `lanes`
    connections in parallel (each taking every `lanes`-th range) from this process: no claim,
    no bookkeeping, no health check. Not a way to migrate: the ceiling the engine's batches could
    reach on this machine in the same minutes, 1 lane for 1 worker, 2 for 2."""

    job, template = "alerts_uuid", "alerts"

    def __init__(self, lanes: int, size: int = 3_000):
        self.lanes = lanes
        self.size = size
        self.key = f"bare{lanes}_alerts_uuid"
        self.label = (f"bare keyset loop, {lanes} connection{'s' if lanes > 1 else ''} "
                      f"({size:,}-key batches, nothing else)")

    def run(self, database: str, logs: Path, memory: MemorySampler) -> Outcome:
        with connect(database) as conn:
            low, high = conn.execute("SELECT min(id), max(id) FROM investments_alert").fetchone()
        ranges = [(start, min(start + self.size, high)) for start in range(low - 1, high, self.size)]
        done: list[int] = []
        failed: list[BaseException] = []

        def lane(mine: list[tuple[int, int]]) -> None:
            try:
                with connect(database, APP_CONTENDER) as conn:
                    for start, end in mine:
                        with conn.transaction():
                            done.append(conn.execute(ASSIGN_UUIDS, [start, end]).rowcount)
                            conn.execute(COPY_TO_TRIGGERS, {"start": start, "end": end})
            except BaseException as exc:  # reported below, not lost in a thread
                failed.append(exc)

        threads = [threading.Thread(target=lane, args=(ranges[i::self.lanes],))
                   for i in range(self.lanes)]
        started = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ended = time.time()
        if failed:
            raise RuntimeError(f"{self.key} failed: {failed[0]}") from failed[0]
        return Outcome(rows=sum(done), seconds=ended - started, window=(started, ended),
                       details={"lanes": self.lanes, "batches": len(ranges), "size": self.size})


class NaiveCelery(Contender):
    job, template = "alerts_uuid", "alerts"

    def __init__(self, templates: Templates, batch_size: int = 1_000):
        self.key = "naive_celery"
        self.batch_size = batch_size
        self.label = f"Celery task re-queuing itself, ORM batches of {batch_size:,}"
        self.total = templates.alerts_total
        self.worker: Process | None = None

    def start(self, database: str, logs: Path, memory: MemorySampler) -> None:
        flush_broker()
        self.worker = Process("naive_worker", [
            *CELERY, "-A", "bench.naive_celery", "worker", "-Q", NAIVE_QUEUE, "--pool", "solo",
            "-n", "naive@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-l", "INFO",
        ], django_env(database, application=APP_CONTENDER), logs)
        self.worker.wait_ready()
        memory.watch("naive_worker", self.worker.pid)

    def run(self, database: str, logs: Path, memory: MemorySampler) -> Outcome:
        client = redis.Redis.from_url(BROKER_URL)
        client.delete(NAIVE_DONE_KEY)
        started = time.time()
        Celery(broker=BROKER_URL).send_task(NAIVE_TASK, args=[0, self.batch_size],
                                            queue=NAIVE_QUEUE)

        def done() -> bool:
            if self.worker.popen.poll() is not None:
                raise RuntimeError(f"the naive worker exited:\n{self.worker.log_tail()}")
            return client.get(NAIVE_DONE_KEY) is not None

        wait_until(done, 7200, 0.2, "the naive Celery backfill")
        finished = float(client.get(NAIVE_DONE_KEY))
        return Outcome(rows=self.total, seconds=finished - started,
                       details={"batches": -(-self.total // self.batch_size)},
                       window=(started, finished))

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        flush_broker()


RUN_QUERY = """
SELECT r.id, r.status, r.rows_done, r.batches_done,
       extract(epoch FROM r.finished_at - r.started_at), r.report, r.options,
       extract(epoch FROM r.started_at), extract(epoch FROM r.finished_at),
       (SELECT array_agg(DISTINCT e.message) FROM migrations_worker_jobrunevent e
        WHERE e.run_id = r.id AND e.message LIKE 'on hold%%'),
       (SELECT count(*) FROM migrations_worker_jobrunevent e
        WHERE e.run_id = r.id AND e.message LIKE 'on hold%%')
FROM migrations_worker_jobrun r WHERE r.job_name = %s ORDER BY r.id DESC LIMIT 1
"""
BATCH_QUERY = """
SELECT count(*), avg(batch_size), max(batch_size), avg(duration_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), max(duration_ms),
       sum(duration_ms), sum(attempts - 1), count(DISTINCT worker),
       extract(epoch FROM max(finished_at) - min(started_at))
FROM migrations_worker_jobbatch WHERE run_id = %s
"""


CHECKPOINTS_QUERY = """
SELECT c.checkpoint, c.percent, c.at, c.eta_seconds, r.finished_at
FROM migrations_worker_jobruncheckpoint c JOIN migrations_worker_jobrun r ON r.id = c.run_id
WHERE c.run_id = %s
"""


def eta_errors(conn, run_id: int) -> dict[str, dict]:
    """The ETA the run showed at 10% and 50% against its actual end (`migrations_worker.eta`),
    by checkpoint; {} when the run took none (it ran too fast to show an ETA)."""
    rows = conn.execute(CHECKPOINTS_QUERY, [run_id]).fetchall()
    if not rows:
        return {}
    errors = eta.eta_errors([eta.Checkpoint(mark, percent, at, seconds)
                             for mark, percent, at, seconds, _ in rows], rows[0][4])
    return {str(e.checkpoint): {"percent": e.percent, "predicted_seconds": e.predicted_seconds,
                                "actual_seconds": e.actual_seconds, "error_ratio": e.error_ratio}
            for e in errors}


class Engine(Contender):
    """This engine: real Celery workers, `backfill start` then `backfill wait`."""

    TEMPLATES = {"alerts_uuid": "alerts", "legacy_columns": "legacy", "ticker_dedup": "dedup"}

    def __init__(self, job: str, workers: int, options: dict | None = None, variant: str = ""):
        self.job = job
        self.workers = workers
        self.options = dict(options or {})
        self.template = self.TEMPLATES[job]
        self.key = f"engine{workers}{variant}_{job}"
        settings = ", ".join(f"{k}={v}" for k, v in self.options.items())
        self.label = (f"this engine, {workers} worker{'s' if workers > 1 else ''}"
                      + (f" ({settings})" if settings else " (default tuning)"))
        self.processes: list[Process] = []

    def start(self, database: str, logs: Path, memory: MemorySampler) -> None:
        flush_broker()
        self.processes = [engine_worker(database, f"{self.key}_w{n}", logs)
                          for n in range(1, self.workers + 1)]
        for process in self.processes:
            process.wait_ready()
            memory.watch(process.name, process.pid)

    def run(self, database: str, logs: Path, memory: MemorySampler) -> Outcome:
        args = ["backfill", "start", self.job, "--workers", str(self.workers)]
        for key, value in self.options.items():
            args += ["--option", f"{key}={json.dumps(value)}"]
        started = time.monotonic()
        manage(database, *args, broker=BROKER_URL, application=APP_CLI)
        manage(database, "backfill", "wait", self.job, "--timeout", "7200",
               broker=BROKER_URL, application=APP_CLI)
        wall = time.monotonic() - started
        with connect(database) as conn:
            (run_id, status, rows, _batches, seconds, report, options, began, ended, holds,
             hold_count) = conn.execute(RUN_QUERY, [self.job]).fetchone()
            stats = conn.execute(BATCH_QUERY, [run_id]).fetchone()
            errors = eta_errors(conn, run_id)
        if status != "finished":
            raise RuntimeError(f"{self.job} run #{run_id} ended {status}")
        count, avg_size, max_size, avg_ms, p95_ms, max_ms, sum_ms, retries, lanes, span = stats
        details = {
            "workers": self.workers, "run_id": run_id, "cli_wall_seconds": wall,
            "report": report, "options": options,
            "batches": count, "avg_batch_size": float(avg_size or 0), "max_batch_size": max_size,
            "avg_batch_ms": float(avg_ms or 0), "p95_batch_ms": float(p95_ms or 0),
            "max_batch_ms": float(max_ms or 0),
            # Time inside batch transactions, per lane, as a share of the run: the rest is
            # claiming, bookkeeping outside the batch, health checks, messages, the final check.
            "batch_time_share": float(sum_ms or 0) / 1000 / max(float(seconds), 1e-9)
            / self.workers,
            "batches_span_seconds": float(span or 0), "retried_attempts": int(retries or 0),
            "lanes_seen": lanes, "holds": hold_count, "hold_reasons": holds or [],
            "eta_errors": errors,
        }
        return Outcome(rows=rows, seconds=float(seconds), window=(float(began), float(ended)),
                       details=details)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        flush_broker()


# -- checking what each did -------------------------------------------------------------------------


def verify(job: str, database: str, templates: Templates, contender: Contender) -> dict:
    """What is left to do (0 when the contender did its whole job), and a fingerprint of the end
    state over the seeded rows, which a single-transaction version must share with the engine."""
    with connect(database) as conn, conn.cursor() as cursor:
        if job == "alerts_uuid":
            if isinstance(contender, OrmLoop):
                cursor.execute(
                    "SELECT (SELECT count(*) FROM investments_alert WHERE id <= %(upto)s "
                    "AND uuid IS NULL) + (SELECT count(*) FROM investments_alerttrigger t "
                    "JOIN investments_alert a ON a.id = t.alert_id WHERE a.id <= %(upto)s "
                    "AND t.alert_uuid IS DISTINCT FROM a.uuid)", {"upto": contender.upto})
            else:
                cursor.execute(ALERTS_REMAINING)
            return {"remaining": cursor.fetchone()[0], "fingerprint": None}
        if job == "legacy_columns":
            remaining = LegacyColumns().count_remaining(cursor)
            cursor.execute("SELECT field, outcome, count(*) FROM assets_assetlegacytext "
                           "GROUP BY 1, 2 ORDER BY 1, 2")
            archive = [list(r) for r in cursor.fetchall()]
            cursor.execute("SELECT count(sector_ref_id), count(industry_ref_id) FROM assets_asset "
                           "WHERE id <= %s", [templates.max_ids["assets_asset"]])
            return {"remaining": remaining,
                    "fingerprint": {"archive": archive, "linked": list(cursor.fetchone())}}
        remaining = TickerDedup().count_remaining(cursor)
        counts = {}
        for table in ("assets_asset", "assets_assetpriceshistoric", "portfolios_holding",
                      "investments_watchlist", "investments_newsarticle_assets"):
            referenced = sql.SQL("count(*)" if table == "assets_asset" else "count(DISTINCT asset_id)")
            cursor.execute(sql.SQL("SELECT count(*), {} FROM {} WHERE id <= %s").format(
                referenced, sql.Identifier(table)), [templates.max_ids[table]])
            counts[table] = list(cursor.fetchone())
        cursor.execute("SELECT count(DISTINCT asset_id) FROM investments_alert WHERE id <= %s",
                       [templates.max_ids["investments_alert"]])
        counts["alert_assets"] = cursor.fetchone()[0]
        cursor.execute("SELECT sum(quantity)::text, round(sum(quantity * average_cost), 2)::text "
                       "FROM portfolios_holding WHERE id <= %s",
                       [templates.max_ids["portfolios_holding"]])
        counts["holdings_quantity_cost"] = list(cursor.fetchone())
        cursor.execute("SELECT table_name, action, count(*) FROM assets_assetmergearchive "
                       "GROUP BY 1, 2 ORDER BY 1, 2")
        counts["archive"] = [list(r) for r in cursor.fetchall()]
        return {"remaining": remaining, "fingerprint": counts}
