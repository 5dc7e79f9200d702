"""The run state machine: which status may follow which, and the log of every change."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from ..exceptions import InvalidTransition
from ..logs import about
from ..models import JobRun, JobRunEvent, RunStatus

log = logging.getLogger("migrations_worker.states")
S = RunStatus
ALLOWED: dict[str, set[str]] = {
    S.PENDING: {
        S.RUNNING,  # dispatched to workers, or worked inline (`backfill run`, a gate)
        S.PAUSED,  # paused before any worker took it
        S.CANCELLED,  # cancelled before any worker took it
    },
    S.RUNNING: {
        S.PAUSING,  # an operator asked to pause: workers stop between batches
        S.CANCELLING,  # an operator asked to cancel: workers stop between batches
        S.FAILED,  # a batch ran out of attempts, or the verification found rows left
        S.FINISHED,  # every batch done and the verification found nothing left
    },
    S.PAUSING: {
        S.PAUSED,  # a worker settled the request between batches
        S.RUNNING,  # resumed before a worker settled it
        S.CANCELLING,  # cancelled while pausing
        S.FAILED,  # the batch in flight ran out of attempts
    },
    S.PAUSED: {
        S.RUNNING,  # resumed
        S.CANCELLED,  # cancelled while no worker holds it
    },
    S.CANCELLING: {
        S.CANCELLED,  # a worker settled the request between batches
    },
    S.FAILED: {
        S.RUNNING,  # retried: failed batches requeued, or the range walked again
        S.FINISHED,  # its only failure was quarantined keys, which an operator accepted
        S.CANCELLED,  # given up by an operator
    },
    S.CANCELLED: set(),  # terminal: a new run starts the job again
    S.FINISHED: set(),  # terminal
}


def record(run: JobRun, from_status: str, to_status: str, actor: str, message: str = "",
           hold_kind: str = "", *, using: str) -> None:
    """Log a status change (or a notable event) to the run's history and to the log stream; a
    hold's event carries its kind (models.HoldKind), which the metrics count by."""
    JobRunEvent.objects.using(using).create(
        run=run, from_status=from_status, to_status=to_status, actor=actor, message=message,
        hold_kind=hold_kind,
    )
    log.info(
        "run=%s job=%s status=%s from=%s actor=%s database=%s message=%r",
        run.pk, run.job_name, to_status, from_status or "-", actor or "-", using, message,
        extra=about(run=run.pk, job=run.job_name, target=using, status=to_status,
                    from_status=from_status or None, actor=actor or None),
    )


def transition(
    run_id: int, to: str, *, using: str, actor: str, message: str = "", verb: str | None = None,
    **changes
) -> JobRun:
    """Move a run to `to` under its row lock, or raise InvalidTransition saying why not."""
    with transaction.atomic(using=using):
        run = JobRun.objects.using(using).select_for_update().get(pk=run_id)
        return enter(run, to, using=using, actor=actor, message=message, verb=verb, **changes)


def enter(
    run: JobRun, to: str, *, using: str, actor: str, message: str = "", verb: str | None = None,
    **changes
) -> JobRun:
    """Move `run`, row-locked by the caller's transaction, to `to` with `changes` and log it;
    InvalidTransition (naming `verb`, else `to`) unless ALLOWED has that edge. Every change of a
    run's status goes through here; the SQL claim only ever reads the status."""
    if to not in ALLOWED[run.status]:
        raise InvalidTransition(
            f"run #{run.pk} of {run.job_name} is {run.status}; cannot {verb or to} it"
        )
    from_status = run.status
    run.status = to
    if to in S.terminal():
        run.finished_at = timezone.now()
    if to == S.FAILED and message:
        run.error = message
    for name, value in changes.items():
        setattr(run, name, value)
    run.save(using=using)
    record(run, from_status, to, actor, message, using=using)
    return run
