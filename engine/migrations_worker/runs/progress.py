"""Progress figures an operator reads: percent, rate, ETA, hold, last error. Shared by the CLI,
the admin and the gate messages so they never disagree. Also what the ETA said at 10% and 50%
(`eta`), kept on the run as its progress is saved, and the pace of its latest batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.utils import timezone

from ..logs import about
from ..models import BatchStatus, JobRun, JobRunCheckpoint, RunStatus, percent_done
from . import eta

log = logging.getLogger("migrations_worker.progress")

# The kind of a hold stored without one, by an engine from before hold kinds (a rolling deploy).
OTHER_HOLD = "other"


@dataclass(frozen=True)
class Progress:
    run_id: int
    job: str
    status: str
    percent: float
    rows_done: int
    estimated_total: int
    rows_per_second: float | None
    eta_seconds: float | None
    batch_size: int
    hold_reason: str
    hold_kind: str  # a models.HoldKind, OTHER_HOLD, or "" when not held
    error: str
    report: dict

    @property
    def eta(self) -> str:
        return format_duration(self.eta_seconds)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def progress_of(run: JobRun) -> Progress:
    rate = None
    if run.started_at and run.rows_done:
        end = run.finished_at or timezone.now()
        elapsed = (end - run.started_at).total_seconds()
        rate = run.rows_done / elapsed if elapsed > 0 else None
    eta = None
    if run.status == RunStatus.FINISHED:
        eta = 0.0
    elif rate and run.estimated_total:
        eta = max(0.0, (run.estimated_total - run.rows_done) / rate)
    held = bool(run.hold_reason) and run.hold_until is not None and run.hold_until > timezone.now()
    return Progress(
        run_id=run.pk,
        job=run.job_name,
        status=run.status,
        percent=run.percent,
        rows_done=run.rows_done,
        estimated_total=run.estimated_total,
        rows_per_second=rate,
        eta_seconds=eta,
        batch_size=run.batch_size,
        hold_reason=run.hold_reason if held else "",
        hold_kind=(run.hold_kind or OTHER_HOLD) if held else "",
        error=run.error,
        report=dict(run.report or {}),
    )


def hold_text(p: Progress) -> str:
    """A hold as an operator reads it, its kind first: 'on hold (replica lag): standby ...'."""
    return f"on hold ({p.hold_kind.replace('_', ' ')}): {p.hold_reason}" if p.hold_reason else ""


def one_line(p: Progress) -> str:
    rate = f"{p.rows_per_second:,.0f} rows/s" if p.rows_per_second else "- rows/s"
    line = (
        f"{p.job} #{p.run_id} {p.status}: {p.percent:.1f}% "
        f"({p.rows_done:,} of ~{p.estimated_total:,} rows), {rate}, ETA {p.eta}, "
        f"batch size {p.batch_size:,}"
    )
    if p.hold_reason:
        line += f", {hold_text(p)}"
    if p.error:
        line += f", last error: {p.error}"
    return line


# -- the ETA held against the end ------------------------------------------------------------------


def passed(run_id: int, rows_before: int, rows_after: int | None, estimated_total: int, *,
           using: str) -> None:
    """A fold (totals.FOLD, or the one inside claim.CLAIM) took the run's rows from
    `rows_before` to `rows_after`: take the checkpoints it passed. A fold is one statement that
    adds each batch once, so exactly one fold passes each checkpoint, whichever way the run is
    worked (Celery slices, `backfill run`, a gate finishing inline) and however many workers
    fold; the other folds cost no query."""
    if rows_after is None or not estimated_total:
        return
    marks = eta.crossed(percent_done(rows_before, estimated_total),
                        percent_done(rows_after, estimated_total))
    if not marks:
        return
    run = JobRun.objects.using(using).get(pk=run_id)
    if run.status == RunStatus.RUNNING:
        take_checkpoints(run, marks, using=using)


def take_checkpoints(run: JobRun, marks: list[int], *, using: str) -> None:
    """Keep the ETA the run shows now at `marks`. In a savepoint, and never raising: the ETA is
    a report on the run, and a checkpoint that cannot be written must not cost the fold it
    rides on (nor the transaction around it, in `runner.RunWorker._finalize`)."""
    p = progress_of(run)
    if p.eta_seconds is None:
        return
    now = timezone.now()
    rows = [JobRunCheckpoint(run_id=run.pk, checkpoint=mark, percent=round(p.percent, 2), at=now,
                             eta_seconds=round(p.eta_seconds, 3)) for mark in marks]
    try:
        with transaction.atomic(using=using):
            JobRunCheckpoint.objects.using(using).bulk_create(rows, ignore_conflicts=True)
    except DatabaseError as exc:
        log.warning("run=%s job=%s ETA checkpoint(s) %s not kept: %s", run.pk, run.job_name,
                    marks, f"{type(exc).__name__}: {exc}".strip(),
                    extra=about(run=run.pk, job=run.job_name, target=using))


def checkpoints_of(run: JobRun) -> list[eta.Checkpoint]:
    return [eta.Checkpoint(c.checkpoint, c.percent, c.at, c.eta_seconds)
            for c in run.checkpoints.all()]


def eta_errors(run: JobRun) -> list[eta.EtaError]:
    """The run's ETA at each checkpoint against its actual end (none until it has finished)."""
    if run.status != RunStatus.FINISHED:
        return []
    return eta.eta_errors(checkpoints_of(run), run.finished_at)


# How many of a run's latest batches its current pace is read from.
SAMPLE_BATCHES = 50


def sampled_rate(run: JobRun) -> float | None:
    """Rows per second over the run's latest succeeded batches, from the first one's start to
    the last one's end (the pauses between them included): the pace it goes at now, or None
    before a batch has finished."""
    batches = list(run.batches.filter(status=BatchStatus.SUCCEEDED, started_at__isnull=False,
                                      finished_at__isnull=False)
                   .order_by("-finished_at").values_list("started_at", "finished_at",
                                                         "rows_affected")[:SAMPLE_BATCHES])
    rows = sum(b[2] for b in batches)
    if not batches or rows <= 0:
        return None
    span = (max(b[1] for b in batches) - min(b[0] for b in batches)).total_seconds()
    return rows / span if span > 0 else None
