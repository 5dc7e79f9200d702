"""Operator actions that need no worker: validate a request, create a run, pause or cancel it.
The CLI, the admin and the migration operations all go through here (and through `dispatch`
for what must reach the workers), so every path validates the same way and logs the same
events."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction

from ..exceptions import AlreadyActive, InvalidInput, InvalidTuning
from ..job import Job, UndoJob, get_job, job_classes
from ..models import ACTIVE_STATUSES, BatchStatus, JobRun, RunStatus
from ..targets import database_flag
from . import batching, quarantine, verdict
from .states import record, transition
from .throttle import Tuning, site_defaults

log = logging.getLogger("migrations_worker.control")

MAX_WORKERS = 32


def validate_batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTuning(f"batch size must be a whole number, not {value!r}")
    if value <= 0:
        raise InvalidTuning(f"batch size must be positive, got {value}")
    return value


def active_run(job_name: str, *, using: str = DEFAULT_DB_ALIAS) -> JobRun | None:
    return JobRun.objects.using(using).filter(job_name=job_name, status__in=ACTIVE_STATUSES).first()


def latest_run(job_name: str, *, using: str = DEFAULT_DB_ALIAS) -> JobRun | None:
    return JobRun.objects.using(using).filter(job_name=job_name).order_by("-id").first()


def undone_since(run: JobRun, *, using: str) -> bool:
    """Whether a run of an undo of `run`'s job was created after it: the work `run` finished may
    have been put back, so "finished" no longer settles the job without its verification."""
    undoes = [c.name for c in job_classes() if issubclass(c, UndoJob) and c.undoes == run.job_name]
    return JobRun.objects.using(using).filter(job_name__in=undoes, pk__gt=run.pk).exists()


@dataclass(frozen=True)
class RunRequest:
    """A request for a run, checked: its job found in the registry and its options valid."""

    job: Job
    options: dict
    tuning: Tuning
    workers: int


def validated(
    job_name: str, *, batch_size: int | None = None, workers: int = 1, options: dict | None = None
) -> RunRequest:
    """The run asked for, or InvalidInput saying what is wrong with the request."""
    job = get_job(job_name)
    options = dict(options or {})
    if batch_size is not None:
        options["batch_size"] = validate_batch_size(batch_size)
    if "batch_size" in options:  # "above the job's maximum" says more than "out of range"
        limits = Tuning.resolve(site_defaults(), job.defaults,
                                {k: v for k, v in options.items() if k != "batch_size"})
        requested = validate_batch_size(options["batch_size"])
        if requested > limits.max_batch_size:
            raise InvalidTuning(
                f"batch size {requested} is above this job's maximum {limits.max_batch_size}")
    tuning = Tuning.resolve(site_defaults(), job.defaults, options)
    validate_batch_size(tuning.batch_size)
    if tuning.batch_size > tuning.max_batch_size:
        raise InvalidTuning(
            f"batch size {tuning.batch_size} is above this job's maximum {tuning.max_batch_size}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InvalidTuning(f"workers must be between 1 and {MAX_WORKERS}, got {workers!r}")
    return RunRequest(job, options, tuning, workers)


def create_run(
    job_name: str,
    *,
    batch_size: int | None = None,
    workers: int = 1,
    options: dict | None = None,
    actor: str = "",
    using: str = DEFAULT_DB_ALIAS,
) -> JobRun:
    """A pending run with its key bounds frozen now; rows inserted later are caught up at the end."""
    request = validated(job_name, batch_size=batch_size, workers=workers, options=options)
    return create(request, actor=actor, using=using)


def create(request: RunRequest, *, actor: str = "", using: str) -> JobRun:
    """The run `request` asks for (see create_run), on the database `using` (its progress
    tables beside its rows), from a request checked once upstream."""
    job, job_name = request.job, request.job.name
    existing = active_run(job_name, using=using)
    if existing is not None:
        raise AlreadyActive(_already_active_message(existing, using))
    try:
        with transaction.atomic(using=using):
            with connections[using].cursor() as cursor:
                low, high = batching.key_bounds(cursor, job.table, job.key)
                total = job.estimate_total(cursor, low, high)
            run = JobRun.objects.using(using).create(
                job_name=job_name,
                batch_size=request.tuning.batch_size,
                workers=request.workers,
                options=request.options,
                min_key=low,
                max_key=high,
                cursor=None if low is None else low - 1,
                estimated_total=total,
            )
            record(run, "", RunStatus.PENDING, actor, f"keys frozen at [{low}, {high}]",
                   using=using)
    except IntegrityError:
        # Another start won the race between our check and our insert.
        raise AlreadyActive(_already_active_message(active_run(job_name, using=using),
                                                    using)) from None
    return run


def _already_active_message(run: JobRun | None, using: str) -> str:
    if run is None:
        return "another run of this job was started at the same time"
    on = database_flag(using)
    hint = {
        RunStatus.FAILED: f"retry it with `backfill retry {run.job_name}{on}` or cancel it",
        RunStatus.PAUSED: f"resume it with `backfill resume {run.job_name}{on}` or cancel it",
    }.get(run.status, f"watch it with `backfill status {run.job_name}{on}`, or cancel it first")
    return f"{run.job_name} already has run #{run.pk} ({run.status}); {hint}"


def pause(run: JobRun, *, actor: str, using: str = DEFAULT_DB_ALIAS) -> JobRun:
    to = RunStatus.PAUSED if run.status == RunStatus.PENDING else RunStatus.PAUSING
    return transition(run.pk, to, using=using, actor=actor, verb="pause")


def cancel(run: JobRun, *, actor: str, using: str = DEFAULT_DB_ALIAS) -> JobRun:
    with_workers = run.status in (RunStatus.RUNNING, RunStatus.PAUSING)
    to = RunStatus.CANCELLING if with_workers else RunStatus.CANCELLED
    return transition(run.pk, to, using=using, actor=actor, verb="cancel")


def accept_quarantined(run: JobRun, *, actor: str, keys: list[int] | None = None,
                       using: str = DEFAULT_DB_ALIAS) -> JobRun:
    """Let the run finish without its open quarantined keys (or only `keys`), as an operator
    decides for rows that cannot or need not be fixed. A run that failed only because of them,
    its walk over, is verified here and now (rows left in accepted keys do not count against
    it); one still walking goes on, and one that failed for more keeps waiting for a retry."""
    runs = JobRun.objects.using(using)
    with transaction.atomic(using=using):
        run = runs.select_for_update().get(pk=run.pk)
        open_now = set(quarantine.open_keys(run.pk, using=using).values_list("key", flat=True))
        unknown = sorted(set(keys or ()) - open_now)
        if unknown:
            raise InvalidInput(f"run #{run.pk} of {run.job_name} has no open quarantined key "
                               f"{', '.join(map(str, unknown))}; `backfill quarantine "
                               f"{run.job_name}{database_flag(using)}` lists them")
        if not open_now:
            raise InvalidInput(f"run #{run.pk} of {run.job_name} has no open quarantined key")
        marked = quarantine.accept(run, actor, keys, using=using)
        shown = ", ".join(map(str, marked[:20])) + (" ..." if len(marked) > 20 else "")
        record(run, run.status, run.status, actor,
               f"accepted {len(marked)} quarantined key(s): {shown}", using=using)
        walk_over = (run.status == RunStatus.FAILED and run.caught_up
                     and not run.batches.exclude(status__in=[BatchStatus.SUCCEEDED,
                                                             BatchStatus.QUARANTINED]).exists())
    if walk_over:
        verdict.conclude(run, get_job(run.job_name), actor, using=using)
    return runs.get(pk=run.pk)
