"""A run as JSON: the one shape every place that prints a run uses (`/ops/runs.json` and
`/ops/runs/<id>.json`, the admin's live view, `backfill status|list|wait|start|run --json`,
`migrate_online --check --json`), so a script written against one reads them all. Its figures
come from `progress.progress_of`, as the tables and bars of the admin and the CLI do.

The run names the target it was read from (`database`; its progress lives there) and links to
its admin page on that target.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from ..models import ACTIVE_STATUSES, BatchStatus, JobBatch, JobRun, QuarantinedKey, Resolution, RunStatus
from ..runs.progress import eta_errors, progress_of
from . import targeting


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def batch_counts(run_ids: Iterable[int], using: str = DEFAULT_DB_ALIAS) -> dict[int, dict[str, int]]:
    """Batches per status for each run of target `using`, in one query."""
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in BatchStatus})
    rows = (JobBatch.objects.using(using).filter(run_id__in=list(run_ids)).values("run_id", "status")
            .annotate(n=Count("id")).order_by())
    for row in rows:
        counts[row["run_id"]][row["status"]] = row["n"]
    return counts


def quarantined_counts(run_ids: Iterable[int],
                       using: str = DEFAULT_DB_ALIAS) -> dict[int, dict[str, int]]:
    """Each run's quarantined keys: how many are open (the run cannot finish), how many in all,
    in one query."""
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {"open": 0, "total": 0})
    rows = (QuarantinedKey.objects.using(using).filter(run_id__in=list(run_ids)).values("run_id")
            .annotate(total=Count("id"), open=Count("id", filter=Q(resolution=Resolution.OPEN)))
            .order_by())
    for row in rows:
        counts[row["run_id"]] = {"open": row["open"], "total": row["total"]}
    return counts


def run_payload(run: JobRun, batches: dict[str, int] | None = None,
                quarantined: dict[str, int] | None = None) -> dict:
    """One run, as every JSON answer and output shows it; `batches` and `quarantined` when the
    caller counted them for many runs at once (`batch_counts`, `quarantined_counts`)."""
    p = progress_of(run)
    now = timezone.now()
    using = run._state.db or DEFAULT_DB_ALIAS
    return {
        "id": run.pk,
        "database": using,
        "job": run.job_name,
        "status": run.status,
        "active": run.status in ACTIVE_STATUSES,
        "percent": round(p.percent, 2),
        "rows_done": p.rows_done,
        "estimated_total": p.estimated_total,
        "rows_per_second": round(p.rows_per_second, 1) if p.rows_per_second else None,
        "eta_seconds": round(p.eta_seconds, 1) if p.eta_seconds is not None else None,
        "eta": p.eta,
        # The ETA shown at 10% and 50%, and once finished how far off each was.
        "eta_errors": [{"checkpoint": e.checkpoint, "percent": e.percent,
                        "predicted_seconds": e.predicted_seconds,
                        "actual_seconds": round(e.actual_seconds, 3),
                        "error_ratio": None if e.error_ratio is None else round(e.error_ratio, 4)}
                       for e in eta_errors(run)],
        "batch_size": p.batch_size,
        "batches_done": run.batches_done,
        "batches": batches if batches is not None else batch_counts([run.pk], using)[run.pk],
        "quarantined_keys": (quarantined if quarantined is not None
                             else quarantined_counts([run.pk], using)[run.pk]),
        "workers": run.workers,
        "hold_reason": p.hold_reason,
        "hold_kind": p.hold_kind,
        "hold_until": iso(run.hold_until) if p.hold_reason else None,
        "error": p.error,
        "report": p.report,
        "keys": {"min": run.min_key, "max": run.max_key, "cursor": run.cursor},
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "heartbeat_at": iso(run.heartbeat_at),
        "heartbeat_age_seconds": round((now - run.heartbeat_at).total_seconds(), 1)
        if run.heartbeat_at and run.status not in RunStatus.terminal() else None,
        "admin_url": reverse("admin:migrations_worker_jobrun_change", args=[run.pk])
        + targeting.query(using),
    }


def run_payloads(runs: Iterable[JobRun], using: str = DEFAULT_DB_ALIAS) -> list[dict]:
    """Many runs of target `using`, their batches and quarantined keys counted in two queries."""
    runs = list(runs)
    counts = batch_counts((r.pk for r in runs), using)
    quarantined = quarantined_counts((r.pk for r in runs), using)
    return [run_payload(run, counts[run.pk], quarantined[run.pk]) for run in runs]
