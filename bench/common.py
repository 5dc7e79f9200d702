"""Where the benchmark runs: servers, paths, process environments, and small helpers shared by
the orchestrator and the contender processes.

Every database the benchmark creates is named `bench_*` and every Celery message it sends goes
to its own Redis database, so it can run next to other people's tests on the same services.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "apps" / "backend" / "src"
RESULTS = ROOT / "bench" / "results"

# The server the local services script starts; override for another one.
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:55432")
BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:56379/9")
# Preparing a database runs migrations that enqueue jobs; with the broker unreachable they are
# left pending (and then cancelled), so nothing works on a template behind the benchmark's back.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/9"

# The naive Celery contender (bench/naive_celery.py): its queue, task, and end-of-run flag.
NAIVE_QUEUE = "bench_naive"
NAIVE_TASK = "bench.naive_backfill"
NAIVE_DONE_KEY = "bench:naive:done"

# application_name of each kind of session: the lock sampler tells who blocks whom by it.
APP_LOAD = "bench-load"
APP_CONTENDER = "bench-contender"
APP_ENGINE = "bench-engine"
APP_DEPLOY = "bench-deploy"
APP_CLI = "bench-cli"  # `backfill start` / `backfill wait`: steering, not work
APP_PREPARE = "bench-prepare"
APP_SAMPLER = "bench-sampler"
# Sessions that do the migration's work; a load statement waiting on one of them is "blocked
# by a batch" (or by the single transaction, for the contrast).
WORK_APPS = (APP_CONTENDER, APP_ENGINE)


def db_url(database: str, application: str = "") -> str:
    url = f"{PG_SERVER.rstrip('/')}/{database}"
    return f"{url}?application_name={application}" if application else url


def connect(database: str, application: str = APP_CONTENDER, **kwargs) -> psycopg.Connection:
    return psycopg.connect(db_url(database, application), autocommit=True, **kwargs)


def django_env(database: str, *, broker: str = BROKER_URL, application: str = APP_CONTENDER,
               log_level: str = "WARNING") -> dict[str, str]:
    """The environment of a manage.py / Celery process working on `database`: the development
    settings (production-like engine defaults), the benchmark's broker, a recognisable
    application_name on every database session."""
    return {
        **os.environ,
        "DATABASE_URL": db_url(database),
        "REDIS_URL": broker,
        "BENCH_REDIS_URL": broker,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        # As in production: with DEBUG on, Django keeps the text of the last 9,000 queries of
        # every connection, which would inflate the ORM contenders' memory (and the engine's).
        "DEBUG": "0",
        "DB_APPLICATION_NAME": application,
        "LOG_LEVEL": log_level,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "engine"), str(SRC)]),
        "PYTHONUNBUFFERED": "1",
    }


def admin_execute(statement: sql.Composable | str, params=None) -> None:
    """A statement on the maintenance database (CREATE/DROP DATABASE cannot run in a transaction)."""
    with psycopg.connect(db_url("postgres", APP_PREPARE), autocommit=True) as conn:
        conn.execute(statement, params)


def admin_scalar(query: str, params=None):
    with psycopg.connect(db_url("postgres", APP_PREPARE), autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def scalar(database: str, query: str | sql.Composable, params=None):
    with connect(database, APP_PREPARE) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


# The server settings a figure depends on: every report names the ones it ran on.
SERVER_SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
                   "max_wal_size", "checkpoint_timeout", "wal_buffers", "fsync",
                   "synchronous_commit", "full_page_writes", "track_io_timing")


def server_settings(conn: psycopg.Connection | None = None) -> dict[str, str]:
    """What the server runs with, as it reports each setting (with its unit); deploy/services.sh
    sizes its memory from the machine."""
    if conn is None:
        with connect("postgres", APP_PREPARE) as own:
            return server_settings(own)
    rows = conn.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name",
                        [list(SERVER_SETTINGS)]).fetchall()
    return dict(rows)


def settings_words(settings: dict[str, str]) -> str:
    """"shared_buffers 3018MB, effective_cache_size 9056MB, ...": for a report's header."""
    return ", ".join(f"{name} {settings[name]}" for name in SERVER_SETTINGS if name in settings)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2,
               what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU a live process has used so far (PostgreSQL backends included: the
    benchmark runs on the database's machine, and CPU time is what a busy machine does not
    distort the way it distorts wall time)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine so far, every CPU (/proc/stat): what the
    machine did during a run, the other people on it included."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process: the most resident memory it ever had (kernel-tracked)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None
