"""Operator actions on runs: start, pause, resume, cancel, retry. The CLI, the admin and the
migration operations all go through here, so every path validates the same way and logs the
same events."""

from __future__ import annotations

import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import batching
from .job import get_job
from .models import ACTIVE_STATUSES, BatchStatus, JobRun, RunStatus
from .states import InvalidTransition, record, transition
from .throttle import Tuning, site_defaults

log = logging.getLogger("migrations_worker.control")

MAX_WORKERS = 32


class ControlError(Exception):
    """A request an operator made that cannot be carried out; the message says why."""


class AlreadyActive(ControlError):
    pass


class BrokerUnavailable(ControlError):
    pass


def validate_batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"batch size must be a whole number, not {value!r}")
    if value <= 0:
        raise ControlError(f"batch size must be positive, got {value}")
    return value


def active_run(job_name: str) -> JobRun | None:
    return JobRun.objects.filter(job_name=job_name, status__in=ACTIVE_STATUSES).first()


def latest_run(job_name: str) -> JobRun | None:
    return JobRun.objects.filter(job_name=job_name).order_by("-id").first()


def validated(
    job_name: str, *, batch_size: int | None = None, workers: int = 1, options: dict | None = None
) -> tuple[dict, Tuning]:
    """A run's options and tuning, or ControlError / ValueError saying what is wrong with them."""
    job = get_job(job_name)
    options = dict(options or {})
    if batch_size is not None:
        options["batch_size"] = validate_batch_size(batch_size)
    if "batch_size" in options:  # "above the job's maximum" says more than "out of range"
        limits = Tuning.resolve(site_defaults(), job.defaults,
                                {k: v for k, v in options.items() if k != "batch_size"})
        requested = validate_batch_size(options["batch_size"])
        if requested > limits.max_batch_size:
            raise ControlError(
                f"batch size {requested} is above this job's maximum {limits.max_batch_size}")
    tuning = Tuning.resolve(site_defaults(), job.defaults, options)
    validate_batch_size(tuning.batch_size)
    if tuning.batch_size > tuning.max_batch_size:
        raise ControlError(
            f"batch size {tuning.batch_size} is above this job's maximum {tuning.max_batch_size}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ControlError(f"workers must be between 1 and {MAX_WORKERS}, got {workers!r}")
    return options, tuning


def create_run(
    job_name: str,
    *,
    batch_size: int | None = None,
    workers: int = 1,
    options: dict | None = None,
    actor: str = "",
) -> JobRun:
    """A pending run with its key bounds frozen now; rows inserted later are caught up at the end."""
    job = get_job(job_name)
    options, tuning = validated(job_name, batch_size=batch_size, workers=workers, options=options)
    existing = active_run(job_name)
    if existing is not None:
        raise AlreadyActive(_already_active_message(existing))
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                low, high = batching.key_bounds(cursor, job.table, job.key)
                total = job.estimate_total(cursor, low, high)
            run = JobRun.objects.create(
                job_name=job_name,
                batch_size=tuning.batch_size,
                workers=workers,
                options=options,
                min_key=low,
                max_key=high,
                cursor=None if low is None else low - 1,
                estimated_total=total,
            )
            record(run, "", RunStatus.PENDING, actor, f"keys frozen at [{low}, {high}]")
    except IntegrityError:
        # Another start won the race between our check and our insert.
        raise AlreadyActive(_already_active_message(active_run(job_name))) from None
    return run


def _already_active_message(run: JobRun | None) -> str:
    if run is None:
        return "another run of this job was started at the same time"
    hint = {
        RunStatus.FAILED: "retry it with `backfill retry` or cancel it",
        RunStatus.PAUSED: "resume it with `backfill resume` or cancel it",
    }.get(run.status, "watch it with `backfill status`, or cancel it first")
    return f"{run.job_name} already has run #{run.pk} ({run.status}); {hint}"


def start(
    job_name: str,
    *,
    batch_size: int | None = None,
    workers: int = 1,
    options: dict | None = None,
    actor: str = "",
) -> JobRun:
    """Create a run and hand it to the Celery workers. Nothing is created if the broker is down.
    Bad input is reported as such whether or not the broker is up: it is checked first."""
    validated(job_name, batch_size=batch_size, workers=workers, options=options)
    from .dispatch import ensure_broker

    ensure_broker()
    run = create_run(
        job_name, batch_size=batch_size, workers=workers, options=options, actor=actor
    )
    return dispatch_run(run.pk, actor=actor)


def dispatch_run(run_id: int, *, actor: str, message: str = "dispatched to workers",
                 expected: tuple[str, ...] = (), refusal: str = "") -> JobRun:
    """Set the run running under a new epoch (fencing older messages) and send its lanes.

    `expected`: the statuses the caller saw; checked again under the run's row lock, so of two
    operators resuming the same run at once, one resumes it and the other is told it no longer
    needs it (rather than both dispatching it)."""
    from .dispatch import send_lanes

    with transaction.atomic():
        run = JobRun.objects.select_for_update().get(pk=run_id)
        if expected and run.status not in expected:
            raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {run.status}; {refusal}")
        from_status = run.status
        if run.status in (RunStatus.PENDING, RunStatus.PAUSED, RunStatus.FAILED):
            run.status = RunStatus.RUNNING
        elif run.status not in (RunStatus.RUNNING, RunStatus.PAUSING, RunStatus.CANCELLING):
            raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {run.status}")
        run.dispatch_epoch += 1
        run.started_at = run.started_at or timezone.now()
        run.heartbeat_at = timezone.now()
        run.finished_at = None
        run.save()
        record(run, from_status, run.status, actor, f"{message} (epoch {run.dispatch_epoch})")
        transaction.on_commit(lambda: send_lanes(run))
    return run


def pause(run: JobRun, *, actor: str) -> JobRun:
    if run.status == RunStatus.PENDING:
        return transition(run.pk, RunStatus.PAUSED, actor=actor, verb="pause")
    return transition(run.pk, RunStatus.PAUSING, actor=actor, verb="pause")


def resume(run: JobRun, *, actor: str) -> JobRun:
    if run.status not in (RunStatus.PAUSED, RunStatus.PAUSING):
        raise InvalidTransition(
            f"run #{run.pk} of {run.job_name} is {run.status}; only a paused run can be resumed"
        )
    from .dispatch import ensure_broker

    ensure_broker()
    return dispatch_run(run.pk, actor=actor, message="resumed",
                        expected=(RunStatus.PAUSED, RunStatus.PAUSING),
                        refusal="only a paused run can be resumed")


def cancel(run: JobRun, *, actor: str) -> JobRun:
    if run.status in (RunStatus.RUNNING, RunStatus.PAUSING):
        return transition(run.pk, RunStatus.CANCELLING, actor=actor, verb="cancel")
    return transition(run.pk, RunStatus.CANCELLED, actor=actor, verb="cancel")


def retry(run: JobRun, *, actor: str) -> JobRun:
    """Put a failed run's failed batches back in the queue and continue where it stopped."""
    if run.status != RunStatus.FAILED:
        raise InvalidTransition(
            f"run #{run.pk} of {run.job_name} is {run.status}; only a failed run can be retried"
        )
    from .dispatch import ensure_broker

    ensure_broker()
    refusal = "only a failed run can be retried"
    with transaction.atomic():
        locked = JobRun.objects.select_for_update().get(pk=run.pk)  # one retry at a time
        if locked.status != RunStatus.FAILED:
            raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {locked.status}; {refusal}")
        reset = run.batches.filter(status=BatchStatus.FAILED).update(
            status=BatchStatus.PENDING, attempts=0, retry_after=None, lease_until=None
        )
        JobRun.objects.filter(pk=run.pk).update(error="", caught_up=False)
        return dispatch_run(run.pk, actor=actor, message=f"retry: {reset} failed batch(es) requeued",
                            expected=(RunStatus.FAILED,), refusal=refusal)
