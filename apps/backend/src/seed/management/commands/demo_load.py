"""`manage.py demo_load`: one release's application traffic while the database is migrated, and
how long anything waited for a lock meanwhile.

    manage.py demo_load --release previous|new --output F [--stop-file S] [--seconds N]
                        [--pause P] [--sample S] [--ready-file R]

Runs `seed.releases.PreviousRelease` (the legacy models: `sector`/`industry` written, merged-away
duplicates named) or `NewRelease` (today's models) against the database until SIGTERM/SIGINT,
the stop file appearing, or `--seconds` (the ready file, if named, appears once the first
operation is done: the release is serving); meanwhile a sampler reads `pg_locks.waitstart` every
`--sample` seconds (0: not at all) and keeps the longest lock wait of any session in the
database: the application's statements, the jobs' batches and the migrations' DDL alike. On the
way out it writes one JSON document that `demo_report --load` prints and checks: the release's
statements, errors (with SQLSTATE), p50/p99/max latency, the longest lock wait, and every text
and row it wrote.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import psycopg
from django.core.management.base import BaseCommand
from django.db import connection
from psycopg.conninfo import make_conninfo

from seed.releases import NewRelease, PreviousRelease

RELEASES = {"previous": PreviousRelease, "new": NewRelease}

LONGEST_LOCK_WAIT = """
SELECT extract(epoch FROM now() - l.waitstart), l.pid, l.mode, l.locktype,
       coalesce(l.relation::regclass::text, ''), a.application_name, left(a.query, 200)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND l.waitstart IS NOT NULL AND a.datname = current_database()
  AND l.pid <> pg_backend_pid()
ORDER BY l.waitstart LIMIT 1
"""


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
        return {**self.longest, "samples": self.samples, "interval_seconds": self.interval,
                "errors": self.errors}

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
    help = "Run one release's traffic and sample lock waits until stopped; write the result as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--release", choices=RELEASES, required=True)
        parser.add_argument("--output", required=True, help="where to write the JSON result")
        parser.add_argument("--stop-file", default=None, help="stop once this file exists")
        parser.add_argument("--ready-file", default=None,
                            help="create this file once the first operation is done")
        parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
        parser.add_argument("--pause", type=float, default=0.02,
                            help="seconds between the release's operations (default 0.02)")
        parser.add_argument("--sample", type=float, default=0.1,
                            help="seconds between lock-wait samples (default 0.1; 0: none)")
        parser.add_argument("--seed", type=int, default=None, help="the traffic's random seed")

    def handle(self, *args, **options) -> None:
        halt = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: halt.set())
        started = time.monotonic()
        stop_file = Path(options["stop_file"]) if options["stop_file"] else None
        ready_file = Path(options["ready_file"]) if options["ready_file"] else None
        release_class = RELEASES[options["release"]]
        release = release_class(**({"seed": options["seed"]} if options["seed"] is not None else {}))
        sampler = LockWaitSampler(database_url(), options["sample"]) if options["sample"] else None
        if sampler is not None:
            sampler.start()
        traffic = release.run(
            seconds=options["seconds"], pause=options["pause"],
            stop=lambda: halt.is_set() or (stop_file is not None and stop_file.exists()),
            serving=lambda: ready_file.touch() if ready_file is not None else None,
        )
        document = {**traffic.as_dict(), "seconds": round(time.monotonic() - started, 1),
                    "lock_wait": sampler.stop() if sampler is not None else None}
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(document, indent=1, default=str))
        wait = f"; longest lock wait {document['lock_wait']['seconds']} s" if sampler else ""
        self.stdout.write(f"demo_load {traffic.release}: {traffic.statements} operations, "
                          f"{len(traffic.errors)} errors, max {document['max_ms']} ms{wait}")
