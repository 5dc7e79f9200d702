"""Celery tasks: work a bounded slice of a run, then re-enqueue; re-send runs gone quiet."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from . import conf, pg
from .logs import about
from .models import JobRun, RunStatus
from .runs import runner
from .runs.dispatch import RUN_SLICE, dispatch_run

log = logging.getLogger("migrations_worker.tasks")
# A slice that lost the database logs once a minute while it waits for it to come back.
DATABASE_WAIT_SECONDS = 60.0
# A slice that lost another target's database is sent again this much later.
OTHER_DATABASE_RETRY_SECONDS = 5.0


@shared_task(
    bind=True,
    name=RUN_SLICE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=False,
)
def run_slice(self, run_id: int, job_name: str, epoch: int, lane: int,
              database: str = DEFAULT_DB_ALIAS) -> dict:
    """Work run `run_id` of the target `database` for one slice. `job_name` (and `database`)
    are there for Flower's task list; a message from before targets has no `database`: the
    project's own.

    A database that goes away (a restart, a failover, a terminated session) is waited out
    here, then the slice re-enqueues itself: a task that raised would need the same database
    to record its failure, and in the solo pool that second failure stops the whole worker.
    """
    try:
        return _work_slice(self, run_id, job_name, epoch, lane, database)
    finally:
        # Any worker serves any target: a connection to each one it ever served would pile up
        # (Celery's Django fixup closes them after a task too, unless CELERY_DB_REUSE_MAX keeps
        # them). The project's own database is left to that policy: results are stored there.
        if database != DEFAULT_DB_ALIAS:
            connections[database].close()


def _work_slice(task, run_id: int, job_name: str, epoch: int, lane: int, database: str) -> dict:
    try:
        worker = runner.RunWorker(run_id, epoch=epoch, name=f"{task.request.hostname}/lane{lane}",
                                  using=database)
        outcome = worker.work(max_seconds=worker.tuning.slice_seconds)
    except JobRun.DoesNotExist:
        return {"run_id": run_id, "job": job_name, "database": database,
                "outcome": runner.Kind.GONE}
    except DatabaseError as exc:
        if not pg.connection_lost(exc, using=database):
            raise
        connections[database].close()
        log.warning("run=%s job=%s database=%s lost the database (%s); waiting for it",
                    run_id, job_name, database, f"{type(exc).__name__}: {exc}".strip(),
                    extra=about(run=run_id, job=job_name, target=database))
        if database == DEFAULT_DB_ALIAS:
            # Until it is back: returning earlier would have Celery store this task's result in
            # the database that is down, and fail the same way. (A newer dispatch by beat
            # fences the message re-sent below.)
            while error := pg.wait_for_database(DATABASE_WAIT_SECONDS, database):
                log.warning("run=%s job=%s database=%s still down (%s); still waiting",
                            run_id, job_name, database, error,
                            extra=about(run=run_id, job=job_name, target=database))
            delay = 0.5
        else:
            # Another target's server: the result goes to the project's own database, which is
            # up, and a worker waiting here would be lost to every other target of a fleet
            # (two runs of a stopped server would stop two workers). The slice comes back later.
            delay = OTHER_DATABASE_RETRY_SECONDS
        outcome = runner.Outcome(runner.Kind.CONTINUE, delay=delay, status="database-lost")
    if outcome.kind in (runner.Kind.CONTINUE, runner.Kind.HOLD, runner.Kind.WAIT):
        try:
            run_slice.apply_async((run_id, job_name, epoch, lane), {"database": database},
                                  countdown=outcome.delay, queue=conf.get("QUEUE"))
        except Exception as exc:  # a broker outage: the run's heartbeat goes stale, beat re-sends
            log.warning("run=%s job=%s database=%s could not re-enqueue (%s); beat will re-send "
                        "the run", run_id, job_name, database, exc,
                        extra=about(run=run_id, job=job_name, target=database))
    return {"run_id": run_id, "job": job_name, "database": database, "lane": lane,
            "outcome": outcome.kind, "status": outcome.status}


@shared_task(name=conf.REQUEUE_STALE_RUNS, ignore_result=True)
def requeue_stale_runs() -> dict[str, list[int]]:
    """Re-send runs no worker has touched lately, on every target: a killed worker, a lost
    message, a broker restart. A new epoch fences the old messages, should they ever arrive. A
    target that cannot be read (down, not migrated yet) is logged and the others go on."""
    requeued = {}
    for database in conf.targets():
        try:
            requeued[database] = requeue_stale_runs_on(database)
        except Exception:
            log.exception("database=%s stale runs not checked; the next beat tries again",
                          database, extra=about(target=database))
        finally:
            if database != DEFAULT_DB_ALIAS:
                connections[database].close()
    return requeued


def requeue_stale_runs_on(database: str) -> list[int]:
    """The stale runs of one target, re-sent (see requeue_stale_runs)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.get("STALE_HEARTBEAT_SECONDS"))
    runs = JobRun.objects.using(database)
    resendable = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSING, RunStatus.CANCELLING)
    candidates = runs.filter(status__in=resendable).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True)
    ).exclude(hold_until__gt=now)
    requeued = []
    for run in candidates:
        with transaction.atomic(using=database):
            fresh = runs.select_for_update().get(pk=run.pk)
            # Read again under the lock: an operator may have paused or cancelled it since.
            if fresh.status not in resendable:
                continue
            if fresh.heartbeat_at and fresh.heartbeat_at >= stale_before:
                continue
            if fresh.status == RunStatus.PENDING and fresh.created_at >= stale_before:
                continue
            last = fresh.heartbeat_at.isoformat() if fresh.heartbeat_at else "never"
            dispatch_run(fresh.pk, actor="beat", message=f"re-sent: no heartbeat since {last}",
                         using=database)
            requeued.append(fresh.pk)
            log.warning("run=%s job=%s database=%s re-sent: heartbeat stale since %s",
                        run.pk, run.job_name, database, last,
                        extra=about(run=run.pk, job=run.job_name, target=database))
    return requeued
