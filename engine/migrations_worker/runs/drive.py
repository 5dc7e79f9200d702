"""Seeing runs through: work one here until it settles, or watch runs worked elsewhere.

`backfill run` and a gate that finishes a small remainder inline both call `run_inline`;
`backfill wait` and `migrate_online --wait` both call `wait_for`. One loop each, so holds,
waits for other workers' batches and failures are handled the same way everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from ..exceptions import AlreadyActive, JobFailed, TimedOut
from ..models import JobRun, RunStatus
from ..targets import database_flag
from . import control, runner
from .progress import one_line, progress_of
from .states import transition

# A run in one of these may be worked here; a cancelling or failed one needs an operator first
# (start it again, retry it). A paused one is worked only when the operator asks for it here.
WORKABLE = (RunStatus.PENDING, RunStatus.RUNNING)


def run_inline(job_name: str, *, actor: str, worker_name: str, message: str,
               batch_size: int | None = None, options: dict | None = None,
               resume_paused: bool = False,
               on_batch: Callable[[JobRun], None] | None = None,
               using: str = DEFAULT_DB_ALIAS) -> JobRun:
    """Work the job in this process until its run settles: joins the active run (workers may
    be on it too) or starts one (with `options`, its tuning). Returns the run as it ended
    (finished, failed, paused or cancelled by an operator meanwhile)."""
    run = control.active_run(job_name, using=using)
    if run is None:
        run = control.create_run(job_name, batch_size=batch_size, options=options, actor=actor,
                                 using=using)
    elif options:
        raise AlreadyActive(f"{job_name} already has run #{run.pk} ({run.status}) with its own "
                            "tuning; options apply to a new run: run it without them, or cancel "
                            "it first")
    workable = (*WORKABLE, RunStatus.PAUSED) if resume_paused else WORKABLE
    if run.status not in workable:
        fix = OPERATOR_FIX[run.status](job_name, database_flag(using))
        raise JobFailed(f"{one_line(progress_of(run))}; {fix}")
    if run.status != RunStatus.RUNNING:
        # started_at: the rate, the ETA and its checkpoints count from here, as for a dispatch.
        transition(run.pk, RunStatus.RUNNING, using=using, actor=actor, message=message,
                   started_at=run.started_at or timezone.now())
    worker = runner.RunWorker(run.pk, name=worker_name, using=using)
    while True:
        outcome = worker.work(on_batch=on_batch)
        if outcome.kind not in (runner.Kind.HOLD, runner.Kind.WAIT):
            return JobRun.objects.using(using).get(pk=run.pk)
        time.sleep(outcome.delay)


# What an operator does about a run that cannot be worked as it is.
# Each takes the job and what its commands need to reach the run's database (`database_flag`).
OPERATOR_FIX: dict[str, Callable[[str, str], str]] = {
    RunStatus.PAUSED: lambda job, on: (f"it was paused by an operator; resume it with "
                                       f"`backfill resume {job}{on}`"),
    RunStatus.PAUSING: lambda job, on: (f"it is being paused; resume it with "
                                        f"`backfill resume {job}{on}`"),
    RunStatus.CANCELLING: lambda job, on: (f"it is being cancelled; start it again with "
                                           f"`backfill start {job}{on}`"),
    RunStatus.FAILED: lambda job, on: (f"fix the cause, then `backfill retry {job}{on}` (keys it set "
                                       f"aside: `backfill quarantine {job}{on}`)"),
    RunStatus.CANCELLED: lambda job, on: (f"it was cancelled; start it again with "
                                          f"`backfill start {job}{on}`"),
}


def wait_for(job_names: list[str], *, until_any: bool = False, timeout: float | None = None,
             poll: float = 0.5,
             on_poll: Callable[[dict[str, JobRun | None]], None] | None = None,
             using: str = DEFAULT_DB_ALIAS) -> dict[str, JobRun]:
    """Until the latest run of every job in `job_names` is finished (with `until_any`, of one
    of them). A run that fails or is cancelled ends the wait with JobFailed, saying what the
    operator can do; the deadline with TimedOut."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        runs = {name: control.latest_run(name, using=using) for name in job_names}
        stopped = [r for r in runs.values()
                   if r is not None and r.status in (RunStatus.FAILED, RunStatus.CANCELLED)]
        if stopped:
            on = database_flag(using)
            raise JobFailed("; ".join(f"{one_line(progress_of(r))}: {OPERATOR_FIX[r.status](r.job_name, on)}"
                                      for r in stopped))
        finished = [r is not None and r.status == RunStatus.FINISHED for r in runs.values()]
        if any(finished) if until_any else all(finished):
            return runs
        if on_poll is not None:
            on_poll(runs)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimedOut("timed out waiting for: " + "; ".join(
                one_line(progress_of(r)) if r else f"{name}: no run yet"
                for name, r in runs.items() if not (r and r.status == RunStatus.FINISHED)))
        time.sleep(poll)
