"""The last word on a run whose walk is over: verified and finished, or failed saying why."""

from __future__ import annotations

from django.db import connections
from django.utils import timezone

from ..job import Job
from ..models import JobRun, RunStatus
from ..targets import database_flag
from . import quarantine
from .states import record, transition


def conclude(run: JobRun, job: Job, actor: str, *, using: str) -> str:
    """The last word on a run whose walk is over, returning the status it ends in: failed while
    a quarantined key is open; else the job's verification decides, where rows left in keys an
    operator accepted do not count against it. A run that failed already (an operator accepted
    its keys since) stays failed with the new reason, or finishes."""
    still_open = quarantine.open_keys(run.pk, using=using)
    if still_open.exists():
        return _settle_as(run, RunStatus.FAILED, actor,
                          quarantine.blocking_message(run.job_name, still_open, using=using),
                          using=using)
    with connections[using].cursor() as cursor:
        remaining = job.count_remaining(cursor)
    accepted = quarantine.accepted_count(run.pk, using=using)
    if remaining > accepted:
        return _settle_as(run, RunStatus.FAILED, actor,
                          f"verification failed: {remaining} row(s) still need {run.job_name}; "
                          f"`backfill retry {run.job_name}{database_flag(using)}` walks the keys "
                          "they are in again",
                          using=using)
    left = (f"{remaining} row(s) left, no more than the {accepted} accepted quarantined key(s)"
            if remaining else "0 rows left")
    return _settle_as(run, RunStatus.FINISHED, actor,
                      f"verified: {left}; {run.rows_done} row(s) in {run.batches_done} batch(es)",
                      using=using)


def _settle_as(run: JobRun, status: str, actor: str, message: str, *, using: str) -> str:
    runs = JobRun.objects.using(using)
    current = runs.get(pk=run.pk).status
    if current == status == RunStatus.FAILED:  # no change of status: a new reason
        runs.filter(pk=run.pk).update(error=message, updated_at=timezone.now())
        record(run, current, status, actor, message, using=using)
    elif status == RunStatus.FINISHED:
        transition(run.pk, status, using=using, actor=actor, message=message, hold_reason="",
                   hold_kind="", hold_until=None)
    else:
        transition(run.pk, status, using=using, actor=actor, message=message)
    return status
