"""The admin on any target: each list and page shows one target's runs, batches and keys
(`?database=NAME`, `default` without it), says which, and acts on that target.

The choice is a list filter, so the admin itself carries it across pages, sorting, searches,
actions and into the pages a list links to (as `_changelist_filters`); `OnTarget` reads it
there too, and answers 400 for a name that is not a declared target.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib import admin
from django.core.exceptions import BadRequest
from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import conf
from ..exceptions import UnknownTarget
from ..models import JobRun
from . import targeting

RUNS_OFFERED = 100  # the newest runs of a target the batches' and keys' `run` filter offers


def target_of(request: HttpRequest) -> str:
    """The target the page shows; a 400 for a name that is not declared."""
    try:
        return targeting.chosen_in_admin(request.GET)
    except UnknownTarget as exc:
        raise BadRequest(str(exc)) from exc


def target_context(request: HttpRequest) -> dict:
    """What the templates say about the target shown, and the query that stays on it."""
    name = target_of(request)
    return {"mw_target": {**targeting.describe(name), "query": targeting.query(name)},
            "mw_targets": len(conf.targets())}


def run_link(run_id: int, using: str, text: object) -> SafeString:
    """A link to a run's page on the target it lives on."""
    url = reverse("admin:migrations_worker_jobrun_change", args=[run_id]) + targeting.query(using)
    return format_html('<a href="{}">{}</a>', url, text)


class TargetFilter(admin.SimpleListFilter):
    """The target selector: one entry per declared target, `default` chosen without a value.
    Choosing one changes the admin's queryset (`OnTarget.get_queryset`), not a filter on it."""

    title = "target (database)"
    parameter_name = targeting.PARAM

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(name, f"{name} ({targeting.server_of(name)})") for name in conf.targets()]

    def has_output(self) -> bool:
        return len(self.lookup_choices) > 1

    def queryset(self, request, queryset) -> QuerySet:
        return queryset

    def get_facet_counts(self, pk_attname, filtered_qs) -> dict:
        return {}  # every row of a list is on the target shown: a count per target says nothing

    def choices(self, changelist) -> Iterator[dict]:
        shown = self.value() or DEFAULT_DB_ALIAS
        for name, title in self.lookup_choices:
            yield {
                "selected": name == shown,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: name}, remove=[] if name != DEFAULT_DB_ALIAS
                    else [self.parameter_name]),
                "display": title,
            }


class RunFilter(admin.SimpleListFilter):
    """Batches or keys of one run, offered from the target shown (Django's own filter on the
    foreign key would list the runs of `default` whatever the target)."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        runs = JobRun.objects.using(target_of(request)).order_by("-id")[:RUNS_OFFERED]
        return [(str(run.pk), str(run)) for run in runs]

    def queryset(self, request, queryset) -> QuerySet:
        value = self.value()
        if value and value.isascii() and value.isdigit():
            return queryset.filter(run_id=int(value))
        return queryset


class OnTarget:
    """A ModelAdmin mix-in: its lists and pages read the target the request names."""

    change_list_template = "migrations_worker/target_change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).using(target_of(request))

    def get_list_filter(self, request: HttpRequest) -> tuple:
        return (TargetFilter, *super().get_list_filter(request))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {**(extra_context or {}), **target_context(request)}
        return super().changelist_view(request, extra_context)
