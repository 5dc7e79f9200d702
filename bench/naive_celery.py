"""Contender: the alerts UUID backfill as a Celery task that re-queues itself, no bookkeeping.

What a team writes when it knows not to do it in a migration but has no engine: a task takes the
next fixed batch of alerts still without a UUID (keyset on id), gives them UUIDs with one
`bulk_update`, copies them to the trigger rows, commits, and sends itself the last id. No
progress table, no batch sizing, no pause/resume, no fencing; when it finds nothing left it sets
a Redis key, so the benchmark knows when it ended.

    celery -A bench.naive_celery worker -Q bench_naive --pool solo
"""

from __future__ import annotations

import os
import time
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
django.setup()

import redis  # noqa: E402 - after django.setup()
from celery import Celery  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.common import BROKER_URL, NAIVE_DONE_KEY, NAIVE_QUEUE, NAIVE_TASK  # noqa: E402
from bench.models import LegacyAlert, copy_uuid_to_triggers  # noqa: E402

app = Celery("bench_naive", broker=BROKER_URL)
app.conf.task_default_queue = NAIVE_QUEUE
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True


@app.task(name=NAIVE_TASK)
def naive_backfill(after: int, batch_size: int) -> None:
    alerts = list(
        LegacyAlert.objects.filter(id__gt=after, uuid__isnull=True).order_by("id")[:batch_size]
    )
    if not alerts:
        redis.Redis.from_url(BROKER_URL).set(NAIVE_DONE_KEY, repr(time.time()))
        return
    for alert in alerts:
        alert.uuid = uuid.uuid4()
    with transaction.atomic():
        LegacyAlert.objects.bulk_update(alerts, ["uuid"])
        copy_uuid_to_triggers(alert_ids=[a.id for a in alerts])
    naive_backfill.delay(alerts[-1].id, batch_size)
