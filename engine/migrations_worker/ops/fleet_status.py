"""`GET /ops/fleet.json`: where the fleet rollout stands, for dashboards and deploy pipelines.

    GET /ops/fleet.json               the latest rollout (the open one, if one is open)
    GET /ops/fleet.json?rollout=ID    an older one

The answer is `fleet.view.snapshot` (what `fleet status --json` prints: the rollout, its waves
with their targets, counts by status, its timeline), plus `rollouts`, the newest ones to open
instead, and `admin_url`, its fleet page. No rollout yet: `"rollout": null`, and a 200. An id
that is not a number is a 400, one that is no rollout a 404, each saying so.

Who may read it: as `/ops/runs.json` (`status.status_access`), staff who may view runs or the
`MW_STATUS_TOKEN` bearer. It reads the control database only, never a target.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone

from ..fleet import view
from .status import status_access

ROLLOUT_PARAM = "rollout"
ROLLOUTS_LISTED = 20


def rollout_id(raw: str) -> int | None:
    """A rollout's id as a query string carries it: digits only (a bigint's at most 19)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def page_url(rollout: dict | None) -> str:
    """The admin's fleet page of the rollout."""
    url = reverse("admin:migrations_worker_rollout_changelist")
    return f"{url}?{ROLLOUT_PARAM}={rollout['id']}" if rollout else url


@status_access
def fleet_json(request: HttpRequest) -> JsonResponse:
    raw = request.GET.get(ROLLOUT_PARAM)
    wanted = None
    if raw is not None:
        wanted = rollout_id(raw)
        if wanted is None:
            return JsonResponse({"error": f"?{ROLLOUT_PARAM}={raw[:40]!r}: a rollout is named by "
                                          "its id, a number (`rollouts` below lists them)",
                                 "rollouts": view.recent(ROLLOUTS_LISTED)}, status=400)
    rollout = view.latest(wanted)
    if rollout is None and wanted is not None:
        return JsonResponse({"error": f"no fleet rollout #{wanted}: `rollouts` lists the newest "
                                      "(`python manage.py fleet status` shows the latest)",
                             "rollouts": view.recent(ROLLOUTS_LISTED)}, status=404)
    found = view.snapshot(rollout)
    return JsonResponse({"generated_at": timezone.now().isoformat(), **found,
                         "admin_url": page_url(found["rollout"]),
                         "rollouts": view.recent(ROLLOUTS_LISTED)})
