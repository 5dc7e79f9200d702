"""Bad rows set aside: a batch that fails for a reason other than a busy database is split in
two until the failing key stands alone; that key, once it has failed every attempt, is
quarantined (key, error, SQLSTATE, attempts) and the run goes on without it.

A bad row costs a run about log2(batch size) short failed transactions to find, and its own
`max_attempts`; the operator learns the exact key instead of reading an error text. The run
cannot finish while a quarantined key is open: it fails at the end of its walk naming them, and
its gate stays shut, until the operator fixes them (`backfill retry` walks them again) or
accepts them (`backfill quarantine JOB --accept`). Past a budget (`quarantine_allowance` keys,
then `quarantine_rate` of the rows done) the run pauses instead: that many bad keys is more
likely a bug than bad data.
"""

from __future__ import annotations

import logging

from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone
from psycopg import sql

from ..job import Job
from ..models import BatchStatus, JobBatch, JobRun, QuarantinedKey, Resolution
from ..targets import database_flag
from .throttle import Tuning

log = logging.getLogger("migrations_worker.quarantine")

# How many keys a batch's range holds and the one in the middle (the lower of the two for an
# even count), in one scan of the range's keys: a batch is at most `max_batch_size` keys.
KEYS_IN_RANGE = ("SELECT count(*), percentile_disc(0.5) WITHIN GROUP (ORDER BY {k}) FROM {t} "
                 "WHERE {k} > %s AND {k} <= %s")


def keys_in(job: Job, start: int, end: int, *, using: str) -> tuple[int, int | None]:
    """(how many keys, the middle one) in the range (start, end] of the job's table."""
    query = sql.SQL(KEYS_IN_RANGE).format(k=sql.Identifier(job.key), t=sql.Identifier(job.table))
    with connections[using].cursor() as cursor:
        cursor.execute(query, [start, end])
        count, middle = cursor.fetchone()
    return count, middle


def split(batch: JobBatch, middle: int, count: int, *, using: str) -> JobBatch:
    """Cut the (row-locked) batch at `middle`: it keeps (start, middle], a new batch takes
    (middle, end]; both wait to be claimed at once, with their attempts counted afresh. The
    batch's end changes, so a worker still holding a claim on the whole range is fenced (the
    fence checks the end too)."""
    end = batch.end_key
    second = JobBatch.objects.using(using).create(
        run_id=batch.run_id, start_key=middle, end_key=end, status=BatchStatus.PENDING,
        batch_size=max(1, count - count // 2), error=batch.error)
    batch.end_key = middle
    batch.batch_size = max(1, count // 2)
    batch.status = BatchStatus.PENDING
    batch.attempts = 0
    batch.retry_after = None
    batch.save(using=using, update_fields=["end_key", "batch_size", "status", "attempts",
                                           "retry_after", "error", "duration_ms", "lease_until"])
    return second


def set_aside(batch: JobBatch, key: int, error: str, sqlstate: str, *,
              using: str) -> QuarantinedKey | None:
    """Quarantine the (row-locked) one-key batch. A key an operator already accepted in this
    run stays accepted (a retry walked it again): no new row to resolve."""
    batch.status = BatchStatus.QUARANTINED
    batch.finished_at = timezone.now()
    batch.save(using=using,
               update_fields=["status", "error", "duration_ms", "lease_until", "finished_at"])
    accepted = QuarantinedKey.objects.using(using).filter(run_id=batch.run_id, key=key,
                                             resolution=Resolution.ACCEPTED)
    if accepted.exists():
        return None
    return QuarantinedKey.objects.using(using).create(run_id=batch.run_id, batch=batch, key=key, error=error,
                                         sqlstate=sqlstate, attempts=batch.attempts)


def open_keys(run_id: int, *, using: str) -> QuerySet[QuarantinedKey]:
    return QuarantinedKey.objects.using(using).filter(run_id=run_id, resolution=Resolution.OPEN)


def accepted_count(run_id: int, *, using: str) -> int:
    return QuarantinedKey.objects.using(using).filter(
        run_id=run_id, resolution=Resolution.ACCEPTED).count()


def over_budget(run: JobRun, tuning: Tuning, *, using: str) -> str:
    """Why the run must pause for its quarantined keys, or ''."""
    quarantined = open_keys(run.pk, using=using).count()
    allowed = max(tuning.quarantine_allowance, tuning.quarantine_rate * run.rows_done)
    if quarantined <= allowed:
        return ""
    return (f"{quarantined} key(s) quarantined, over the budget of {allowed:,.0f} "
            f"({tuning.quarantine_allowance} key(s), or {tuning.quarantine_rate:.2%} of the "
            f"{run.rows_done:,} row(s) done): more likely a bug than bad rows. "
            f"`backfill quarantine {run.job_name}{database_flag(using)}` lists them; fix the "
            f"cause and `backfill resume {run.job_name}{database_flag(using)}`, or accept them "
            "first")


def blocking_message(job_name: str, keys: QuerySet[QuarantinedKey], *, using: str) -> str:
    """Why a run whose walk is over cannot finish: its open keys, the first few with their
    errors, and the ways out."""
    count = keys.count()
    shown = "; ".join(f"key {q.key} ({q.error[:160]})" for q in keys.order_by("key")[:3])
    more = f"; and {count - 3} more" if count > 3 else ""
    on = database_flag(using)
    return (f"{count} quarantined key(s) left open: {shown}{more}. `backfill quarantine "
            f"{job_name}{on}` lists them; fix the rows and `backfill retry {job_name}{on}`, or "
            f"accept them with `backfill quarantine {job_name} --accept{on}`")


def requeue(run: JobRun, *, using: str) -> int:
    """A retry walks the open quarantined keys again (the operator fixed the rows): their
    batches wait to be claimed, the keys are marked retried (a key that fails again is set
    aside anew)."""
    keys = open_keys(run.pk, using=using)
    batch_ids = list(keys.values_list("batch_id", flat=True))
    JobBatch.objects.using(using).filter(pk__in=batch_ids, status=BatchStatus.QUARANTINED).update(
        status=BatchStatus.PENDING, attempts=0, retry_after=None, lease_until=None,
        finished_at=None)
    return keys.update(resolution=Resolution.RETRIED, resolved_at=timezone.now(),
                       resolved_by="retry")


def accept(run: JobRun, actor: str, keys: list[int] | None = None, *, using: str) -> list[int]:
    """Mark the run's open quarantined keys (or only `keys`) accepted; returns those marked."""
    chosen = open_keys(run.pk, using=using)
    if keys is not None:
        chosen = chosen.filter(key__in=keys)
    marked = sorted(set(chosen.values_list("key", flat=True)))
    chosen.update(resolution=Resolution.ACCEPTED, resolved_at=timezone.now(), resolved_by=actor)
    return marked
