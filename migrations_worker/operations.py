"""Migration operations: the seam between schema migrations and data jobs.

`EnqueueJob` starts a job from the migration that made its work possible (e.g. the one that
added a column); `RequireJob` gates a later migration on it. On an empty or small database the
gate simply finishes the job inline, so a fresh `migrate` runs to the end in one go; on a big one
it stops with the job's progress and the exact command to watch or finish it.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.operations.base import Operation

log = logging.getLogger("migrations_worker.operations")

DEFAULT_INLINE_LIMIT = 10_000


def default_inline_limit() -> int:
    """Rows a gate may finish inline; MW_GATE_INLINE_LIMIT overrides it for every gate."""
    return int(settings.MIGRATIONS_WORKER.get("GATE_INLINE_LIMIT", DEFAULT_INLINE_LIMIT))


class JobNotFinished(CommandError):
    """A gated migration ran before its job finished. Carries the job's name for the deploy step."""

    def __init__(self, job_name: str, message: str):
        super().__init__(message)
        self.job_name = job_name


class EnqueueJob(Operation):
    reduces_to_sql = False
    reversible = True

    def __init__(self, job_name: str, batch_size: int | None = None, workers: int = 1):
        self.job_name = job_name
        self.batch_size = batch_size
        self.workers = workers

    def deconstruct(self):
        kwargs = {"job_name": self.job_name}
        if self.batch_size is not None:
            kwargs["batch_size"] = self.batch_size
        if self.workers != 1:
            kwargs["workers"] = self.workers
        return (self.__class__.__qualname__, [], kwargs)

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        from .control import create_run, dispatch_run, latest_run
        from .models import RunStatus

        previous = latest_run(self.job_name)
        if previous is not None and previous.status != RunStatus.CANCELLED:
            log.info("job %s already has run #%s (%s)", self.job_name, previous.pk, previous.status)
            return
        run = create_run(
            self.job_name, batch_size=self.batch_size, workers=self.workers, actor="migrate"
        )
        try:
            from .dispatch import ensure_broker

            ensure_broker(timeout=2.0)
        except Exception as exc:
            log.warning("job %s run #%s left pending: %s", self.job_name, run.pk, exc)
            return
        dispatch_run(run.pk, actor="migrate", message="enqueued by migration")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return f"Enqueue data job {self.job_name}"


class RequireJob(Operation):
    reduces_to_sql = False
    reversible = True

    def __init__(self, job_name: str, inline_limit: int | None = None):
        self.job_name = job_name
        self.inline_limit = inline_limit

    def deconstruct(self):
        kwargs = {"job_name": self.job_name}
        if self.inline_limit is not None:
            kwargs["inline_limit"] = self.inline_limit
        return (self.__class__.__qualname__, [], kwargs)

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if connection.in_atomic_block:
            raise CommandError(
                f"RequireJob({self.job_name!r}) must be in a migration with atomic = False: "
                "finishing the job inline commits batch by batch"
            )
        limit = default_inline_limit() if self.inline_limit is None else self.inline_limit
        ensure_job_finished(self.job_name, limit, gate=app_label)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return f"Require data job {self.job_name} to be finished"


def ensure_job_finished(job_name: str, inline_limit: int, gate: str = "") -> None:
    """Return if the job is done (finishing a small remainder here); raise JobNotFinished if not."""
    from . import runner
    from .control import active_run, create_run, latest_run
    from .job import get_job
    from .models import RunStatus
    from .progress import one_line, progress_of
    from .states import transition

    job = get_job(job_name)
    run = latest_run(job_name)
    if run is not None and run.status == RunStatus.FINISHED:
        return
    with connection.cursor() as cursor:
        remaining = job.count_remaining(cursor)
    run = active_run(job_name)
    blocked_by = ""
    if run is not None and run.status in (RunStatus.PAUSED, RunStatus.PAUSING):
        blocked_by = f"it was paused by an operator; resume it with `backfill resume {job_name}`"
    elif run is not None and run.status == RunStatus.FAILED:
        blocked_by = f"it failed ({run.error}); fix the cause, then `backfill retry {job_name}`"
    elif run is not None and run.status == RunStatus.CANCELLING:
        blocked_by = f"it is being cancelled; start it again with `backfill start {job_name}`"
    if not blocked_by and remaining <= inline_limit:
        if run is None:
            run = create_run(job_name, actor="migrate")
        if run.status == RunStatus.PENDING:
            transition(run.pk, RunStatus.RUNNING, actor="migrate", message="finishing inline")
        outcome = runner.RunWorker(run.pk, name="migrate").work()
        while outcome.kind in (runner.HOLD, runner.WAIT):
            time.sleep(outcome.delay)
            outcome = runner.RunWorker(run.pk, name="migrate").work()
        if outcome.status == RunStatus.FINISHED:
            return
        run.refresh_from_db()
    where = f" (needed by {gate})" if gate else ""
    state = one_line(progress_of(run)) if run else f"{job_name}: no run yet, {remaining:,} rows to do"
    raise JobNotFinished(
        job_name,
        f"data job {job_name}{where} is not finished: {state}."
        + (f" Cannot continue: {blocked_by}." if blocked_by else "")
        + f" Watch it: python manage.py backfill status {job_name} --watch."
        f" Finish it in the foreground: python manage.py backfill run {job_name}."
        " Then run the migration again.",
    )
