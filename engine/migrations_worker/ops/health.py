"""`GET /ops/health`: is this process able to serve, asked of the application itself.

A container's health check opens this (docker-compose's `web`): 200 `{"database": "ok"}` when the
control database answers a query, 503 `{"database": "unavailable"}` when it does not. No
authentication (a health check has no credentials), so the answer names nothing but the verdict:
no host, no error text. One `SELECT 1`, no table read: cheap enough to be asked every few seconds.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"database": "unavailable"}, status=503)
    return JsonResponse({"database": "ok"})
