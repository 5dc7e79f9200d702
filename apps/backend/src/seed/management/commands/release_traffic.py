"""`manage.py release_traffic`: one release's application traffic during a rolling deploy.

    manage.py release_traffic --release previous|new --output F [--stop-file S] [--seconds N]

Runs `seed.releases.PreviousRelease` (the legacy models) or `NewRelease` (today's) against the
database until SIGTERM/SIGINT, the stop file appearing, or `--seconds`; then writes one JSON
document: the release's statements, errors (with SQLSTATE), p50/p99/max latency, and every text
and row it wrote, for the checks that nothing it wrote was lost.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand

from seed.releases import NewRelease, PreviousRelease

RELEASES = {"previous": PreviousRelease, "new": NewRelease}


class Command(BaseCommand):
    help = "Run one release's traffic until stopped; write what it did as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--release", choices=RELEASES, required=True)
        parser.add_argument("--output", required=True, help="where to write the JSON result")
        parser.add_argument("--stop-file", default=None, help="stop once this file exists")
        parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
        parser.add_argument("--pause", type=float, default=0.01,
                            help="seconds between the release's operations (default 0.01)")
        parser.add_argument("--seed", type=int, default=None, help="the traffic's random seed")

    def handle(self, *args, **options) -> None:
        halt = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: halt.set())
        stop_file = Path(options["stop_file"]) if options["stop_file"] else None
        release_class = RELEASES[options["release"]]
        release = release_class(**({"seed": options["seed"]} if options["seed"] is not None else {}))
        traffic = release.run(
            seconds=options["seconds"], pause=options["pause"],
            stop=lambda: halt.is_set() or (stop_file is not None and stop_file.exists()),
        )
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(traffic.as_dict(), indent=1, default=str))
        summary = traffic.summary()
        self.stdout.write(f"release_traffic {summary['release']}: {summary['statements']} "
                          f"operations, {summary['errors']} errors, p99 {summary['p99_ms']} ms")
