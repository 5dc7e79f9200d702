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
refused: 401 when no credentials came with the request, 403 when they were not enough. A run is
written by `run_json.run_payload`, the one JSON shape of a run (`backfill status --json` prints
the same), so the API, the admin and the CLI never disagree.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder

from .. import conf
from ..exceptions import UnknownTarget
from ..models import ACTIVE_STATUSES, JobRun
from . import metrics as progress_metrics
from . import targeting
from .run_json import iso, run_payload, run_payloads

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
    return run_payloads(_filtered_runs(request, using), using)


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
         "finished_at": iso(b.finished_at)}
        for b in run.batches.order_by("-id")[:50]
    ]
    payload["events"] = [
        {"at": iso(e.at), "from": e.from_status, "to": e.to_status, "actor": e.actor,
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
