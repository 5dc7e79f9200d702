"""Contender: the alerts UUID backfill as a Django RunPython migration would do it.

The pattern of Django's documentation ("Migrations that add unique fields"): load the rows, give
each its UUID, `save(update_fields=[...])` one by one, all inside the migration's transaction
(RunPython in an atomic migration), then copy the UUIDs to the trigger rows with one ORM update.

    python -m bench.orm_loop --upto ID      # alerts with id <= ID (a subset at medium scale)

Prints one JSON line: rows, seconds (inside this process, Django start-up excluded), peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
django.setup()

from django.db import transaction  # noqa: E402 - after django.setup()

from bench.models import LegacyAlert, copy_uuid_to_triggers  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backfill(upto: int) -> dict:
    cpu_before = cpu()
    wall = time.time()
    started = time.monotonic()
    rows = 0
    with transaction.atomic():
        for alert in LegacyAlert.objects.filter(id__lte=upto):
            alert.uuid = uuid.uuid4()
            alert.save(update_fields=["uuid"])
            rows += 1
        alerts_seconds = time.monotonic() - started
        references = copy_uuid_to_triggers(upto=upto)
    return {
        "rows": rows,
        "references": references,
        "seconds": time.monotonic() - started,
        "alerts_seconds": alerts_seconds,
        "window": [wall, time.time()],
        "cpu_seconds": cpu() - cpu_before,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upto", type=int, required=True, help="the last alert id to backfill")
    print(json.dumps(backfill(parser.parse_args().upto)))


if __name__ == "__main__":
    main()
