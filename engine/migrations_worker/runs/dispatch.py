"""Handing runs to the Celery workers: start, resume, retry, and the dispatch itself.

The broker only carries "work on run N" nudges; losing one costs time, never data, because the
beat task re-sends runs whose heartbeat went stale. Every dispatch bumps the run's epoch, which
fences the messages of older dispatches. The task is sent by its name, so this module does not
import the tasks module (which imports it).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from kombu.utils.url import maybe_sanitize_url

from .. import conf
from ..celery import app
from ..exceptions import AlreadyActive, BrokerUnavailable, InvalidTransition
from ..job import get_job
from ..logs import about
from ..models import BatchStatus, JobBatch, JobRun, RunStatus
from . import batching, control, quarantine
from .states import enter, record
from .totals import fold

log = logging.getLogger("migrations_worker.dispatch")

RUN_SLICE = "migrations_worker.run_slice"
# The statuses a dispatch leaves as they are: workers settle a pause or a cancel themselves.
WITH_WORKERS = (RunStatus.RUNNING, RunStatus.PAUSING, RunStatus.CANCELLING)


def ensure_broker(timeout: float = 3.0) -> None:
    """Fail fast, before anything is written, when the broker cannot be reached. The message
    names the broker without its password: it ends up in deploy logs and operators' terminals."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise BrokerUnavailable(
            f"cannot reach the Celery broker at {maybe_sanitize_url(app.conf.broker_url)}: {exc}. "
            "Start the broker (CELERY_BROKER_URL), or run the job in the foreground with "
            "`backfill run`."
        ) from exc


def send_lanes(run: JobRun, *, using: str) -> None:
    """One message per lane, naming the run's database: any worker serves any target (and
    Flower shows which one a task works on)."""
    for lane in range(run.workers):
        try:
            app.send_task(RUN_SLICE, (run.pk, run.job_name, run.dispatch_epoch, lane),
                          {"database": using}, retry=False, queue=conf.get("QUEUE"))
        except Exception:
            log.exception("run=%s database=%s could not send lane %s; beat will re-send it",
                          run.pk, using, lane,
                          extra=about(run=run.pk, job=run.job_name, target=using, lane=lane))


def dispatch_run(run_id: int, *, actor: str, message: str = "dispatched to workers",
                 expected: tuple[str, ...] = (), refusal: str = "",
                 using: str = DEFAULT_DB_ALIAS) -> JobRun:
    """Set the run running under a new epoch (fencing older messages) and send its lanes.

    `expected`: the statuses the caller saw; checked again under the run's row lock, so of two
    operators resuming the same run at once, one resumes it and the other is told it no longer
    needs it (rather than both dispatching it)."""
    with transaction.atomic(using=using):
        run = JobRun.objects.using(using).select_for_update().get(pk=run_id)
        if expected and run.status not in expected:
            raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {run.status}; {refusal}")
        now = timezone.now()
        epoch = {"dispatch_epoch": run.dispatch_epoch + 1, "started_at": run.started_at or now,
                 "heartbeat_at": now, "finished_at": None}
        message = f"{message} (epoch {run.dispatch_epoch + 1})"
        if run.status in WITH_WORKERS:  # no change of status: only the epoch moves on
            for name, value in epoch.items():
                setattr(run, name, value)
            run.save(using=using)
            record(run, run.status, run.status, actor, message, using=using)
        else:
            enter(run, RunStatus.RUNNING, using=using, actor=actor, message=message,
                  verb="dispatch", **epoch)
        transaction.on_commit(lambda: send_lanes(run, using=using), using=using)
    return run


def start(job_name: str, *, actor: str = "", using: str = DEFAULT_DB_ALIAS, **request) -> JobRun:
    """Create a run (`control.create_run` takes `request`) and hand it to the workers. Nothing
    is created if the broker is down; bad input is reported as such whether or not the broker
    is up: it is checked first."""
    checked = control.validated(job_name, **request)
    ensure_broker()
    run = control.create(checked, actor=actor, using=using)
    return dispatch_run(run.pk, actor=actor, using=using)


def resume(run: JobRun, *, actor: str, using: str = DEFAULT_DB_ALIAS) -> JobRun:
    refusal = "only a paused run can be resumed"
    if run.status not in (RunStatus.PAUSED, RunStatus.PAUSING):
        raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {run.status}; {refusal}")
    ensure_broker()
    return dispatch_run(run.pk, actor=actor, message="resumed",
                        expected=(RunStatus.PAUSED, RunStatus.PAUSING), refusal=refusal,
                        using=using)


def retry(run: JobRun, *, actor: str, using: str = DEFAULT_DB_ALIAS) -> JobRun:
    """Continue a failed run where it stopped.

    A run fails in one of three ways, and retry undoes each: a batch ran out of attempts (its
    failed batches go back in the queue), keys were quarantined (walked again: the operator
    fixed the rows), or every batch succeeded but the verification still
    found rows to do (rows written meanwhile by code that bypassed the job's expand step): then
    the batches over the keys the job says still need it, or the whole range, are walked again
    (batches are idempotent), followed by a fresh catch-up pass and the verification."""
    refusal = "only a failed run can be retried"
    if run.status != RunStatus.FAILED:
        raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {run.status}; {refusal}")
    ensure_broker()
    with transaction.atomic(using=using):
        locked = JobRun.objects.using(using).select_for_update().get(pk=run.pk)  # one at a time
        if locked.status != RunStatus.FAILED:
            raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {locked.status}; {refusal}")
        message = requeue_for_retry(locked, using=using)
        return dispatch_run(run.pk, actor=actor, message=message,
                            expected=(RunStatus.FAILED,), refusal=refusal, using=using)


def requeue_for_retry(run: JobRun, *, using: str) -> str:
    """Put back what a failed run must do again; returns what will happen, for the log. What
    succeeded so far is counted in the run's totals first: a batch walked again starts over."""
    fold(run.pk, using=using)
    failed = run.batches.filter(status=BatchStatus.FAILED)
    reset = failed.update(status=BatchStatus.PENDING, attempts=0, retry_after=None, lease_until=None)
    keys = quarantine.requeue(run, using=using)
    JobRun.objects.using(using).filter(pk=run.pk).update(error="", caught_up=False)
    if reset or keys:
        return f"retry: {reset} failed batch(es) and {keys} quarantined key(s) requeued"
    job = get_job(run.job_name)
    with connections[using].cursor() as cursor:
        keys = job.remaining_key_range(cursor)
        walked = run.batches.filter(status=BatchStatus.SUCCEEDED)
        where = "the whole range"
        below = 0
        if keys is not None:
            low, high = keys
            walked = walked.filter(end_key__gte=low, start_key__lt=high)
            where = f"keys [{low}, {high}]"
            if run.min_key is not None and low < run.min_key:
                below = queue_range(cursor, run, job, low - 1, run.min_key - 1, using=using)
    again = walked.update(status=BatchStatus.PENDING, attempts=0, retry_after=None, lease_until=None)
    return (f"retry: verification had failed; walking {where} again ({again + below} batch(es), "
            "idempotent), then a catch-up pass and the verification")


def queue_range(cursor, run: JobRun, job, after: int, upto: int, *, using: str) -> int:
    """Pending batches over the keys (after, upto], which lie below the run's frozen bounds:
    rows the verification found there were never walked."""
    batches = []
    while (end := batching.next_range_end(cursor, job.table, job.key, after, upto,
                                          run.batch_size)) is not None:
        batches.append(JobBatch(run=run, start_key=after, end_key=end, status=BatchStatus.PENDING,
                                batch_size=run.batch_size))
        after = end
    JobBatch.objects.using(using).bulk_create(batches)
    return len(batches)


class Enqueued(NamedTuple):
    run: JobRun | None
    message: str = ""  # what was done, when anything was
    warning: bool = False


def enqueue(job_name: str, *, actor: str, message: str, using: str = DEFAULT_DB_ALIAS,
            **request) -> Enqueued:
    """Make sure the job is under way, as a migration or a deploy asks for it: a run that is
    going (or held by an operator) is left as it is, a finished job whose verification still
    finds nothing to do is not started again (one that finds work, after its migration was
    taken back and applied again, or after an undo, is), and otherwise a run is created and
    sent to the workers. With the broker down the run is left pending (beat sends it once the
    broker is back)."""
    run = control.active_run(job_name, using=using)
    if run is not None and run.status != RunStatus.PENDING:
        return Enqueued(run)
    if run is None:
        checked = control.validated(job_name, **request)
        latest = control.latest_run(job_name, using=using)
        if latest is not None and latest.status == RunStatus.FINISHED:
            with connections[using].cursor() as cursor:
                if not checked.job.count_remaining(cursor):
                    return Enqueued(latest)
        try:
            run = control.create(checked, actor=actor, using=using)
        except AlreadyActive:  # someone else started it just now
            return Enqueued(control.active_run(job_name, using=using))
    try:
        ensure_broker(timeout=2.0)
    except BrokerUnavailable as exc:
        log.warning("job %s run #%s left pending: %s", job_name, run.pk, exc,
                    extra=about(run=run.pk, job=job_name, target=using))
        return Enqueued(run, f"{job_name} cannot be sent to workers: {exc}", warning=True)
    try:
        run = dispatch_run(run.pk, actor=actor, message=message, expected=(RunStatus.PENDING,),
                           refusal="sent by someone else just now", using=using)
    except InvalidTransition:
        return Enqueued(control.active_run(job_name, using=using))
    return Enqueued(run, f"enqueued {job_name} run #{run.pk} for the workers")
