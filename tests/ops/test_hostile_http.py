"""Every URL the project serves, asked as a hostile client would: a NUL byte, 10,000 characters,
a word where an id goes, an id past bigint, a negative number, a target nobody declared. Each
answer is a 4xx or the page as usual (200, or a redirect), never a 500 and never a traceback:
PostgreSQL refuses NUL in text and bigint overflows, and neither may reach an operator or a
dashboard as a server error.

The URLs are not listed by hand: the sweep walks the project's URL resolver (the status API, the
admin site and every page its model admins add, the engine's custom views included) and fills
each path parameter with the hostile values; the query parameters of a list are the ones its
own page links to, plus the admin's and the status API's documented ones. Django's test client
with `raise_request_exception=False` turns an unhandled exception into the 500 a server sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern

from migrations_worker.models import JobBatch, JobRun, Rollout, RolloutTarget, TargetStatus
from migrations_worker.runs import control
from tests.engine_app.support import JOB, make_widgets

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])

HUGE_ID = "99999999999999999999"  # past bigint (and past a 64-bit integer)
HOSTILE = ("\x00", "x" * 10_000, "abc", HUGE_ID, "-1", "no_such_target")
# A query parameter gets the same less the undeclared target, which only names a target where
# a target goes (for any other parameter it is one more word, as `abc`).
TARGET_PARAMETERS = {"database": "no_such_target",
                     "_changelist_filters": "database=no_such_target"}
QUERY_VALUES = HOSTILE[:-1]
# Query parameters every page is asked with, beside the ones it links to: the admin's own
# (search, ordering, page, show all, the list a page came from, popups, the related-field
# lookups) and the status API's and the fleet page's.
ALWAYS_ASKED = ("q", "o", "p", "all", "e", "_changelist_filters", "_popup", "_to_field",
                "database", "job", "status", "active", "rollout", "run", "batch_status",
                "app_label", "model_name", "field_name", "term", "next")
# The POST fields of the admin's list actions and of the engine's control views (run and fleet).
POSTED = ("action", "_selected_action", "select_across", "index", "post", "verb", "target",
          "reason", "rollout")
PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
ADMIN_SCOPE = ("admin/migrations_worker/", "ops/")


def routes(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    """Every path pattern the project serves, as `admin/migrations_worker/jobrun/<path:object_id>/
    change/`: route patterns as written, regex ones made readable (`^`, `$` and Django's catch-all
    dropped; a named group becomes `<name>`)."""
    for entry in (resolver or get_resolver()).url_patterns:
        text = str(entry.pattern)
        if isinstance(entry.pattern, RegexPattern):
            text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text.strip("^$"))
        if isinstance(entry, URLResolver):
            yield from routes(entry, prefix + text)
        elif isinstance(entry, URLPattern):
            yield "/" + prefix + text


def filled(route: str, real: dict[str, str]) -> Iterator[str]:
    """The route with each parameter in turn given every hostile value (the others real), and once
    with every parameter real: the normal page, the baseline."""
    names = [m.group("name") for m in PARAMETER.finditer(route)]

    def with_values(values: dict[str, str]) -> str:
        return PARAMETER.sub(lambda m: values[m.group("name")].replace("\x00", "%00"), route)

    baseline = {name: real.get(name, "1") for name in names}
    yield with_values(baseline)
    for name in names:
        for value in HOSTILE:
            yield with_values({**baseline, name: value})


def linked_parameters(html: str) -> set[str]:
    """The query parameters a page's own links carry (its filters, sorting, pages)."""
    found = set()
    for href in re.findall(r'href="([^"]*\?[^"]*)"', html):
        found.update(key for key, _ in parse_qsl(urlsplit(unescape(href)).query,
                                                 keep_blank_values=True))
    return found


def problem(response, what: str) -> str | None:
    """What is wrong with an answer: a 5xx, or a traceback shown to the client."""
    body = response.content.decode(errors="replace") if not response.streaming else ""
    if response.status_code >= 500:
        return f"{what}: HTTP {response.status_code}"
    if "Traceback (most recent call last)" in body:
        return f"{what}: HTTP {response.status_code} shows a traceback"
    assert response.status_code < 400 or 400 <= response.status_code < 500
    return None


def shown(path: str, params: dict | None = None) -> str:
    """A request as the report names it, the long value cut short."""
    text = path if len(path) < 200 else path[:80] + f"...({len(path)} chars)"
    if params:
        text += " " + repr({k: (v if len(v) < 40 else f"{v[:10]}...({len(v)} chars)")
                            for k, v in params.items()})
    return text


@pytest.fixture
def world() -> dict[str, str]:
    """Real rows for every page to show: a run with batches and its rollout, their ids by the
    names the URL patterns give them."""
    make_widgets(20)
    run = control.create_run(JOB)
    JobBatch.objects.create(run=run, start_key=1, end_key=10, status="done", batch_size=10)
    rollout = Rollout.objects.create(stage="pre", waves_spec="1,100%", parallel=2, actor="fleet")
    RolloutTarget.objects.create(rollout=rollout, target="near", wave=1, position=0,
                                 status=TargetStatus.FAILED)
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    return {"run_id": str(run.pk), "object_id": str(run.pk), "verb": "pause",
            "app_label": "migrations_worker", "content_type_id": "1", "url": "nowhere/",
            "rollout": str(rollout.pk), "user": str(user.pk)}


def as_superuser() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.get(username="root"))
    return client


def anonymous() -> Client:
    return Client(raise_request_exception=False)


def engine_routes() -> list[str]:
    """The engine's pages that read what a client sends: its lists, a run's page and its
    controls, the fleet's controls and the status API (Django's generic pages of these read-only
    admins, and a batch's or a key's, take nothing more; the path sweep asks them)."""
    return [r for r in routes() if r.lstrip("/").startswith(ADMIN_SCOPE)
            and not r.endswith(("/add/", "/history/", "/delete/", "<path:object_id>/"))
            and (r.startswith(("/admin/migrations_worker/jobrun/", "/ops/")) or "<" not in r)]


@pytest.mark.parametrize("who", [as_superuser, anonymous], ids=["superuser", "anonymous"])
def test_no_path_the_project_serves_answers_a_hostile_path_parameter_with_a_500(world, who):
    client, problems, asked = who(), [], 0
    for route in routes():
        for path in filled(route, world):
            asked += 1
            problems.append(problem(client.get(path), f"GET {shown(path)}"))
    assert asked > 150, f"only {asked} requests: did the URL walk find the admin's pages?"
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("who", [as_superuser, anonymous], ids=["superuser", "anonymous"])
def test_no_engine_page_or_status_endpoint_answers_a_hostile_query_with_a_500(world, who):
    client, problems = who(), []
    pages = [path for route in engine_routes() for path in list(filled(route, world))[:1]]
    pages.append("/admin/")
    for page in pages:
        normal = as_superuser().get(page)
        keys = sorted(linked_parameters(normal.content.decode(errors="replace"))
                      | set(ALWAYS_ASKED) | {"status__exact", "job_name__exact",
                                             "run__job_name__exact", "resolution__exact"})
        for key in keys:
            target = (TARGET_PARAMETERS[key],) if key in TARGET_PARAMETERS else ()
            for value in (*QUERY_VALUES, *target):
                params = {key: value}
                problems.append(problem(client.get(page, params), f"GET {shown(page, params)}"))
    assert "/ops/runs.json" in pages and "/admin/migrations_worker/jobrun/" in pages
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("who", [as_superuser, anonymous], ids=["superuser", "anonymous"])
def test_no_engine_form_or_action_answers_a_hostile_post_with_a_500(world, who):
    client, problems = who(), []
    normal = {"action": "pause_runs", "_selected_action": world["run_id"], "index": "0",
              "verb": "pause", "target": "near", "reason": "hostile input", "rollout": world["rollout"]}
    pages = [path for route in engine_routes() for path in list(filled(route, world))[:1]
             if "/control/" in path or path.endswith("/jobrun/")]  # the pages that take a POST
    for page in pages:
        for key in POSTED:
            for value in HOSTILE:
                body = {**normal, key: value}
                problems.append(problem(client.post(page, body), f"POST {shown(page, body)}"))
    assert JobRun.objects.get(pk=world["run_id"]).status == "pending"  # nothing confirmed
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
