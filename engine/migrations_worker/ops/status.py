"""The read-only status API: every run's state and progress, for dashboards, deploy pipelines
and the admin's live progress bars.

    GET /ops/runs.json            every run, newest first (?job=NAME, ?status=a,b, ?active=1)
    GET /ops/runs/<id>.json       one run, with its batch counts, latest batches and status log
                                  (every run says how many keys it set aside, how many still open)
    GET /ops/metrics              the same figures for Prometheus (latest run of each job, runs
                                  by status, holds by check, ETA errors), every target's: `metrics`

Each target keeps its own runs: `?database=NAME` reads that target (`default` without it), and
every answer and every run in it names its database; `/ops/runs.json?database=*` lists every
target (its server, labels and whether it could be read) and all their runs. A name that is not
a declared target is a 400 naming the declared ones.

Who may read it: a staff user who may view runs (a session, as in the admin), or a client that
sends `Authorization: Bearer <MW_STATUS_TOKEN>` when that setting is non-empty. Everyone else is
refused: 401 when no credentials came with the request, 403 when they were not enough. The
figures come from `progress.progress_of`, so the API, the admin and the CLI never disagree.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import wraps

from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder

from .. import conf
from ..exceptions import UnknownTarget
from ..models import ACTIVE_STATUSES, BatchStatus, JobBatch, JobRun, QuarantinedKey, Resolution, RunStatus
from ..runs.progress import eta_errors, progress_of
from . import metrics as progress_metrics
from . import targeting

VIEW_PERMISSION = "migrations_worker.view_jobrun"


def bearer_token_ok(request: HttpRequest) -> bool:
    """The request carries the configured status token; no token configured (or one too short to
    be safe, which the system check reports) means no token auth."""
    expected = conf.status_token()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or conf.status_token_problem() or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def may_read_status(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_staff
                and user.has_perm(VIEW_PERMISSION))


def status_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff who may view runs, or the bearer token; a 401 or 403 JSON answer otherwise."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if bearer_token_ok(request) or may_read_status(request):
            return view(request, *args, **kwargs)
        if request.user.is_authenticated or request.headers.get("Authorization"):
            return JsonResponse(
                {"error": "forbidden: the status API is for staff who may view job runs"},
                status=403,
            )
        response = JsonResponse(
            {"error": "authentication required: log in to the admin as staff, or send "
                      "'Authorization: Bearer <MW_STATUS_TOKEN>'"},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="migrations_worker status"'
        return response

    return require_safe(never_cache(wrapper))


def _iso(value: datetime | None) -> str | None:
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
    """One run as the API, the admin's live view and `demo_report` see it, naming the target
    it was read from (its progress lives there)."""
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
        "hold_until": _iso(run.hold_until) if p.hold_reason else None,
        "error": p.error,
        "report": p.report,
        "keys": {"min": run.min_key, "max": run.max_key, "cursor": run.cursor},
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "heartbeat_at": _iso(run.heartbeat_at),
        "heartbeat_age_seconds": round((now - run.heartbeat_at).total_seconds(), 1)
        if run.heartbeat_at and run.status not in RunStatus.terminal() else None,
        "admin_url": reverse("admin:migrations_worker_jobrun_change", args=[run.pk])
        + targeting.query(using),
    }


def _filtered_runs(request: HttpRequest, using: str):
    runs = JobRun.objects.using(using).order_by("-id").prefetch_related("checkpoints")
    if request.GET.get("job"):
        runs = runs.filter(job_name=request.GET["job"])
    if request.GET.get("status"):
        runs = runs.filter(status__in=request.GET["status"].split(","))
    if request.GET.get("active") in ("1", "true", "yes"):
        runs = runs.filter(status__in=ACTIVE_STATUSES)
    return runs


def _runs_of(request: HttpRequest, using: str) -> list[dict]:
    runs = list(_filtered_runs(request, using))
    counts = batch_counts((r.pk for r in runs), using)
    quarantined = quarantined_counts((r.pk for r in runs), using)
    return [run_payload(run, counts[run.pk], quarantined[run.pk]) for run in runs]


def unknown_target(exc: UnknownTarget) -> JsonResponse:
    return JsonResponse({"error": str(exc), "targets": sorted(conf.targets())}, status=400)


@status_access
def runs_json(request: HttpRequest) -> JsonResponse:
    if request.GET.get(targeting.PARAM) == targeting.EVERY:
        return _every_target(request)
    try:
        using = targeting.chosen(request.GET)
    except UnknownTarget as exc:
        return unknown_target(exc)
    return JsonResponse({"generated_at": timezone.now().isoformat(), "database": using,
                         "runs": _runs_of(request, using)})


def _every_target(request: HttpRequest) -> JsonResponse:
    """Every target's runs, target by target; one that cannot be read is listed with its error
    (and no runs) rather than failing the whole answer."""
    targets, runs = [], []
    for using in conf.targets():
        target = {**targeting.describe(using), "reachable": True, "error": ""}
        try:
            runs.extend(_runs_of(request, using))
        except DatabaseError as exc:
            target.update(reachable=False, error=targeting.first_line(exc))
        targets.append(target)
    return JsonResponse({"generated_at": timezone.now().isoformat(), "database": targeting.EVERY,
                         "targets": targets, "runs": runs})


@status_access
def run_json(request: HttpRequest, run_id: int) -> JsonResponse:
    try:
        using = targeting.chosen(request.GET)
    except UnknownTarget as exc:
        return unknown_target(exc)
    run = JobRun.objects.using(using).filter(pk=run_id).first()
    if run is None:
        return JsonResponse({"error": f"no run #{run_id} on database {using!r}",
                             "database": using}, status=404)
    payload = run_payload(run)
    payload["latest_batches"] = [
        {"start_key": b.start_key, "end_key": b.end_key, "status": b.status,
         "attempts": b.attempts, "batch_size": b.batch_size, "rows": b.rows_affected,
         "duration_ms": b.duration_ms, "worker": b.worker, "error": b.error,
         "finished_at": _iso(b.finished_at)}
        for b in run.batches.order_by("-id")[:50]
    ]
    payload["events"] = [
        {"at": _iso(e.at), "from": e.from_status, "to": e.to_status, "actor": e.actor,
         "message": e.message}
        for e in run.events.order_by("-id")[:50]
    ]
    return JsonResponse(payload)


# -- Prometheus ------------------------------------------------------------------------------------


@status_access
def metrics(request: HttpRequest) -> HttpResponse:
    """The progress tables as Prometheus metrics (`metrics`), in the text format or OpenMetrics
    as the scraper's Accept header asks."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(progress_metrics.registry()), content_type=content_type)
