"""`manage.py demo_load`: application traffic while the demo migrates, and how long anything
waited for a lock meanwhile.

    manage.py demo_load --output .local/demo/load.json [--stop-file F] [--seconds S]

Runs `seed.live_load.LiveLoad` (the legacy application's reads and writes) against the database
until SIGTERM/SIGINT, the stop file appearing, or `--seconds`; meanwhile a sampler reads
`pg_locks.waitstart` every `--sample` seconds and keeps the longest lock wait of any session in
the database: the application's statements, the jobs' batches and the migrations' DDL alike.
On the way out it writes one JSON document that `demo_report --load` prints: the statements'
count, errors, p50/p99/max latency, and the longest lock wait with what waited on what.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
from pathlib import Path

import psycopg
from django.core.management.base import BaseCommand
from django.db import connection
from psycopg.conninfo import make_conninfo

from seed.live_load import LiveLoad

LONGEST_LOCK_WAIT = """
SELECT extract(epoch FROM now() - l.waitstart), l.pid, l.mode, l.locktype,
       coalesce(l.relation::regclass::text, ''), a.application_name, left(a.query, 200)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.waitstart IS NOT NULL AND a.datname = current_database()
  AND l.pid <> pg_backend_pid()
ORDER BY l.waitstart LIMIT 1
"""


class DemoLoad(LiveLoad):
    """The live load, with new tickers unique to this process: a rerun of the demo runs against
    a table that has UNIQUE (ticker, exchange) by then."""

    def __init__(self, url: str, tag: str, **kwargs):
        super().__init__(url, **kwargs)
        self.tag = tag

    def insert_asset(self, conn) -> None:
        _, exchange, currency, _ = self.random.choice(self.assets)
        self.result.assets_inserted += 1
        conn.execute(
            "INSERT INTO assets_asset (created_at, updated_at, is_deleted, ticker, name, "
            "exchange_id, currency_id) VALUES (now(), now(), false, %s, 'load', %s, %s)",
            [f"LD{self.tag}X{self.result.assets_inserted}", exchange, currency],
        )


class LockWaitSampler(threading.Thread):
    """Keeps the longest lock wait seen in the database, sampled from pg_locks.waitstart."""

    def __init__(self, url: str, interval: float):
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.longest: dict = {"seconds": 0.0}
        self.samples = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> dict:
        self._halt.set()
        self.join(timeout=10)
        return self.longest

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, application_name="demo_load:locks") as conn:
                while not self._halt.wait(self.interval):
                    row = conn.execute(LONGEST_LOCK_WAIT).fetchone()
                    self.samples += 1
                    if row and float(row[0]) > self.longest["seconds"]:
                        seconds, pid, mode, locktype, relation, application, query = row
                        self.longest = {
                            "seconds": round(float(seconds), 3), "pid": pid, "mode": mode,
                            "locktype": locktype, "relation": relation,
                            "application": application, "query": " ".join(query.split()),
                        }
        except psycopg.Error as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def database_url() -> str:
    s = connection.settings_dict
    return make_conninfo(
        dbname=s["NAME"], user=s["USER"] or None, password=s["PASSWORD"] or None,
        host=s["HOST"] or None, port=str(s["PORT"]) if s["PORT"] else None,
        application_name="demo_load",
    )


class Command(BaseCommand):
    help = "Run application traffic and sample lock waits until stopped; write the result as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", required=True, help="where to write the JSON result")
        parser.add_argument("--stop-file", default=None, help="stop once this file exists")
        parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
        parser.add_argument("--pause", type=float, default=0.02,
                            help="seconds between the application's statements (default 0.02)")
        parser.add_argument("--sample", type=float, default=0.1,
                            help="seconds between lock-wait samples (default 0.1)")

    def handle(self, *args, **options) -> None:
        halt = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: halt.set())
        url = database_url()
        started = time.monotonic()
        load = DemoLoad(url, tag=secrets.token_hex(4), pause=options["pause"])
        sampler = LockWaitSampler(url, options["sample"])
        load.start()
        sampler.start()
        stop_file = Path(options["stop_file"]) if options["stop_file"] else None
        while not halt.wait(0.2):
            if stop_file is not None and stop_file.exists():
                break
            if options["seconds"] is not None and time.monotonic() - started >= options["seconds"]:
                break
            if not load.is_alive():
                break  # it could not connect, or it crashed: say so in the result
        result = load.stop()
        longest = sampler.stop()
        document = {
            "seconds": round(time.monotonic() - started, 1),
            "statements": result.count,
            "errors": len(result.errors),
            "first_errors": result.errors[:5],
            "p50_ms": round(result.percentile(50) * 1000, 2),
            "p99_ms": round(result.percentile(99) * 1000, 2),
            "max_ms": round(result.max_latency * 1000, 2),
            "slowest_operation": max(
                result.latencies, key=lambda op: max(result.latencies[op], default=0.0),
                default="",
            ),
            "lock_wait": {**longest, "samples": sampler.samples,
                          "interval_seconds": options["sample"], "errors": sampler.errors},
        }
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(document, indent=2))
        self.stdout.write(
            f"demo_load: {document['statements']} statements, {document['errors']} errors, "
            f"max {document['max_ms']} ms; longest lock wait {longest['seconds']} s"
        )
