"""Celery tasks: work a bounded slice of a run, then re-enqueue; re-send runs gone quiet."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import conf, pg
from .models import JobRun, RunStatus
from .runs import runner
from .runs.dispatch import RUN_SLICE, dispatch_run

log = logging.getLogger("migrations_worker.tasks")
# A slice that lost the database logs once a minute while it waits for it to come back.
DATABASE_WAIT_SECONDS = 60.0


@shared_task(
    bind=True,
    name=RUN_SLICE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=False,
    queue=conf.get("QUEUE"),
)
def run_slice(self, run_id: int, job_name: str, epoch: int, lane: int) -> dict:
    """Work run `run_id` for one slice. `job_name` is there for Flower's task list.

    A database that goes away (a restart, a failover, a terminated session) is waited out
    here, then the slice re-enqueues itself: a task that raised would need the same database
    to record its failure, and in the solo pool that second failure stops the whole worker.
    """
    try:
        worker = runner.RunWorker(run_id, epoch=epoch, name=f"{self.request.hostname}/lane{lane}")
        outcome = worker.work(max_seconds=worker.tuning.slice_seconds)
    except JobRun.DoesNotExist:
        return {"run_id": run_id, "job": job_name, "outcome": runner.Kind.GONE}
    except DatabaseError as exc:
        if not pg.connection_lost(exc):
            raise
        connection.close()
        log.warning("run=%s job=%s lost the database (%s); waiting for it",
                    run_id, job_name, f"{type(exc).__name__}: {exc}".strip())
        # Until it is back: returning earlier would have Celery store this task's result in
        # the database that is down, and fail the same way. (A newer dispatch by beat fences
        # the message re-sent below.)
        while error := pg.wait_for_database(DATABASE_WAIT_SECONDS):
            log.warning("run=%s job=%s database still down (%s); still waiting",
                        run_id, job_name, error)
        outcome = runner.Outcome(runner.Kind.CONTINUE, delay=0.5, status="database-lost")
    if outcome.kind in (runner.Kind.CONTINUE, runner.Kind.HOLD, runner.Kind.WAIT):
        try:
            run_slice.apply_async((run_id, job_name, epoch, lane), countdown=outcome.delay)
        except Exception as exc:  # a broker outage: the run's heartbeat goes stale, beat re-sends
            log.warning("run=%s job=%s could not re-enqueue (%s); beat will re-send the run",
                        run_id, job_name, exc)
    return {"run_id": run_id, "job": job_name, "lane": lane, "outcome": outcome.kind,
            "status": outcome.status}


@shared_task(name=conf.REQUEUE_STALE_RUNS, ignore_result=True, queue=conf.get("QUEUE"))
def requeue_stale_runs() -> list[int]:
    """Re-send runs no worker has touched lately: a killed worker, a lost message, a broker
    restart. A new epoch fences the old messages, should they ever arrive."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.get("STALE_HEARTBEAT_SECONDS"))
    candidates = JobRun.objects.filter(
        status__in=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSING, RunStatus.CANCELLING]
    ).filter(Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True)).exclude(
        hold_until__gt=now
    )
    requeued = []
    for run in candidates:
        with transaction.atomic():
            fresh = JobRun.objects.select_for_update().get(pk=run.pk)
            if fresh.heartbeat_at and fresh.heartbeat_at >= stale_before:
                continue
            if fresh.status == RunStatus.PENDING and fresh.created_at >= stale_before:
                continue
            last = fresh.heartbeat_at.isoformat() if fresh.heartbeat_at else "never"
            dispatch_run(fresh.pk, actor="beat", message=f"re-sent: no heartbeat since {last}")
            requeued.append(fresh.pk)
            log.warning("run=%s job=%s re-sent: heartbeat stale since %s", run.pk, run.job_name, last)
    return requeued
