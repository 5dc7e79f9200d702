"""`RejectNulBytes`: a request whose path, query string or form carries a NUL byte is a 400.

PostgreSQL's text types cannot hold NUL; a NUL that reaches a lookup or a write makes psycopg
raise, and the client gets a 500 from any page that filters on what it sent (the admin's list
filters and searches, `/ops/runs.json?job=`, a run's page). No name, id, filter or reason the
project serves holds a NUL, so it is refused once, here, before a view sees it. Install it in
MIDDLEWARE (the project does: `config.settings.base`), near the top.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

NUL = "\x00"


def carries_nul(request: HttpRequest) -> bool:
    """A NUL in the path (decoded), the query string or a form field of a POST."""
    if NUL in request.path or NUL in request.path_info:
        return True
    if any(NUL in key or any(NUL in value for value in values)
           for key, values in request.GET.lists()):
        return True
    return request.method == "POST" and any(
        NUL in key or any(NUL in value for value in values)
        for key, values in request.POST.lists())


class RejectNulBytes:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if carries_nul(request):
            return HttpResponseBadRequest(
                "Bad request: a NUL byte (%00) in the path, query or form; nothing here takes one.",
                content_type="text/plain")
        return self.get_response(request)
