"""Progress figures an operator reads: percent, rate, ETA, hold, last error. Shared by the CLI,
the admin and the gate messages so they never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from .models import JobRun, RunStatus


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
    hold = run.hold_reason if run.hold_until and run.hold_until > timezone.now() else ""
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
        hold_reason=hold,
        error=run.error,
        report=dict(run.report or {}),
    )


def one_line(p: Progress) -> str:
    rate = f"{p.rows_per_second:,.0f} rows/s" if p.rows_per_second else "- rows/s"
    line = (
        f"{p.job} #{p.run_id} {p.status}: {p.percent:.1f}% "
        f"({p.rows_done:,} of ~{p.estimated_total:,} rows), {rate}, ETA {p.eta}, "
        f"batch size {p.batch_size:,}"
    )
    if p.hold_reason:
        line += f", on hold: {p.hold_reason}"
    if p.error:
        line += f", last error: {p.error}"
    return line
