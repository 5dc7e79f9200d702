"""The run state machine: which status may follow which, and the log of every change."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .models import JobRun, JobRunEvent, RunStatus

log = logging.getLogger("migrations_worker.states")
S = RunStatus
ALLOWED: dict[str, set[str]] = {
    S.PENDING: {S.RUNNING, S.PAUSED, S.CANCELLED},
    S.RUNNING: {S.PAUSING, S.CANCELLING, S.FAILED, S.FINISHED},
    S.PAUSING: {S.PAUSED, S.RUNNING, S.CANCELLING, S.FAILED},
    S.PAUSED: {S.RUNNING, S.CANCELLED},
    S.CANCELLING: {S.CANCELLED},
    S.FAILED: {S.RUNNING, S.CANCELLED},
    S.CANCELLED: set(),
    S.FINISHED: set(),
}


class InvalidTransition(Exception):
    pass


def record(run: JobRun, from_status: str, to_status: str, actor: str, message: str = "") -> None:
    """Log a status change (or a notable event) to the run's history and to the log stream."""
    JobRunEvent.objects.create(
        run=run, from_status=from_status, to_status=to_status, actor=actor, message=message
    )
    log.info(
        "run=%s job=%s status=%s from=%s actor=%s message=%r",
        run.pk, run.job_name, to_status, from_status or "-", actor or "-", message,
    )


def transition(
    run_id: int, to: str, *, actor: str, message: str = "", verb: str | None = None, **changes
) -> JobRun:
    """Move a run to `to` under its row lock, or raise InvalidTransition saying why not."""
    with transaction.atomic():
        run = JobRun.objects.select_for_update().get(pk=run_id)
        if to not in ALLOWED[run.status]:
            raise InvalidTransition(
                f"run #{run.pk} of {run.job_name} is {run.status}; cannot {verb or to} it"
            )
        from_status = run.status
        run.status = to
        now = timezone.now()
        if to in (S.FINISHED, S.CANCELLED, S.FAILED):
            run.finished_at = now
        if to == S.FAILED and message:
            run.error = message
        for name, value in changes.items():
            setattr(run, name, value)
        run.save()
        record(run, from_status, to, actor, message)
        return run
