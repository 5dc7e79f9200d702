"""The runs in the Django admin (registered by `admin.py`): the list, with a live progress bar,
status, rows/s, ETA and the hold (its kind and reason) or last error, updated in place from the
status API; a run's page; and the operator's controls (`runs.controls`), each behind a
confirmation page, offered only to staff holding `migrations_worker.operate_jobrun`. Every page
shows, and every control acts on, one target's runs (`?database=NAME`, `target_admin`)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import conf
from ..exceptions import MigrationsWorkerError
from ..models import BatchStatus, JobRun, Resolution
from ..runs.controls import CONTROLS, Control
from ..runs.progress import format_duration, hold_text, progress_of
from . import targeting
from .chart import batch_chart
from .run_json import run_payload
from .target_admin import OnTarget, target_context

OPERATE = "migrations_worker.operate_jobrun"
BATCHES_SHOWN = 200
QUARANTINED_SHOWN = 200


class ReadOnlyAdmin(OnTarget, admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def live(run: JobRun, field: str, content: str, css: str = "") -> SafeString:
    """A cell the page's script keeps up to date from the status API."""
    return format_html('<span class="mw-live {}" data-mw-run="{}" data-mw-field="{}">{}</span>',
                       css, run.pk, field, content)


def progress_bar(run: JobRun) -> SafeString:
    percent = f"{progress_of(run).percent:.1f}"
    return format_html(
        '<span class="mw-progress" data-mw-run="{}" data-mw-field="percent">'
        '<progress value="{}" max="100" title="{}%"></progress> <b>{}%</b></span>',
        run.pk, percent, percent, percent,
    )


def status_badge(run: JobRun) -> SafeString:
    return live(run, "status", run.status, f"mw-status mw-status-{run.status}")


def is_run_id(value: str) -> bool:
    """A run's primary key as a form sends it: digits only (a bigint's at most 19)."""
    return value.isascii() and value.isdigit() and len(value) <= 19


def control_action(verb: str, description: str) -> Callable:
    """The list action for one control: it shows the confirmation page, then applies."""

    @admin.action(description=description, permissions=["operate"])
    def action(self, request, queryset) -> HttpResponse | None:
        return self._confirm_or_apply(request, queryset, CONTROLS[verb])

    action.__name__ = CONTROLS[verb].action_name
    return action


class JobRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "job_name", "status_display", "progress_display", "rows_display",
        "rows_per_second", "eta", "batch_size_display", "hold_or_error", "started_at",
    )
    list_display_links = ("id", "job_name")
    list_filter = ("status", "job_name")
    search_fields = ("job_name",)
    actions = tuple(c.action_name for c in CONTROLS.values())
    change_list_template = "admin/migrations_worker/jobrun/change_list.html"
    change_form_template = "admin/migrations_worker/jobrun/change_form.html"
    fieldsets = (
        ("Run", {"fields": ("job_name", "status", "workers", "batch_size", "options",
                            "dispatch_epoch", "worker")}),
        ("Hold, error and report", {"fields": ("hold_kind", "hold_reason", "hold_until", "error",
                                                "report")}),
        ("Keys and counters", {"classes": ("collapse",),
                               "fields": ("rows_done", "estimated_total", "batches_done", "min_key",
                                          "max_key", "cursor", "caught_up", "avg_seconds_per_row")}),
        ("Times", {"classes": ("collapse",),
                   "fields": ("created_at", "started_at", "heartbeat_at", "finished_at",
                              "updated_at")}),
    )
    readonly_fields = [f.name for f in JobRun._meta.fields]

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE)

    # -- the runs list ----------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_display(self, run: JobRun) -> SafeString:
        return status_badge(run)

    @admin.display(description="progress")
    def progress_display(self, run: JobRun) -> SafeString:
        return progress_bar(run)

    @admin.display(description="rows")
    def rows_display(self, run: JobRun) -> SafeString:
        return live(run, "rows", f"{run.rows_done:,} / ~{run.estimated_total:,}")

    @admin.display(description="rows/s")
    def rows_per_second(self, run: JobRun) -> SafeString:
        rate = progress_of(run).rows_per_second
        return live(run, "rate", f"{rate:,.0f}" if rate else "-")

    @admin.display(description="ETA")
    def eta(self, run: JobRun) -> SafeString:
        return live(run, "eta", progress_of(run).eta)

    @admin.display(description="batch size")
    def batch_size_display(self, run: JobRun) -> SafeString:
        return live(run, "batch_size", f"{run.batch_size:,}")

    @admin.display(description="hold / last error")
    def hold_or_error(self, run: JobRun) -> SafeString:
        p = progress_of(run)
        text = hold_text(p) if p.hold_reason else p.error[:160]
        return live(run, "hold", text, "mw-error" if p.error and not p.hold_reason else "mw-hold")

    # -- actions, each behind a confirmation page ------------------------------------------------

    pause_runs = control_action("pause", "Pause selected runs")
    resume_runs = control_action("resume", "Resume selected runs")
    cancel_runs = control_action("cancel", "Cancel selected runs")
    retry_runs = control_action("retry", "Retry failed batches of selected runs")

    def response_action(self, request, queryset) -> HttpResponse | None:
        """Django's list action, after refusing a selection that is not a list of run ids:
        Django's own `pk__in` lookup would raise on it, and the operator would get a 500."""
        refused = [value for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
                   if not is_run_id(value)]
        if refused:
            self.message_user(
                request, f"Not a run id: {refused[0][:40]!r}. Nothing was changed; select the runs "
                "in the list.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    def _confirm_or_apply(self, request, queryset, ctl: Control) -> HttpResponse | None:
        """Django's intermediate-page pattern: the first POST shows what will happen, the second
        (carrying post=yes) does it."""
        runs = list(queryset.order_by("id"))
        if not runs:
            self.message_user(request, "None of the selected runs exists (any more). Nothing was "
                              "changed.", messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            self._apply(request, runs, ctl)
            return None
        return self._confirmation(request, runs, ctl, form_url="", cancel_url=request.get_full_path())

    def _apply(self, request, runs: list[JobRun], ctl: Control) -> None:
        actor = f"admin:{request.user.get_username()}"
        for run in runs:
            try:
                done = ctl.apply(run, actor=actor, using=run._state.db)
            except MigrationsWorkerError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request, f"{done.job_name} #{done.pk}: {ctl.done} (now {done.status})",
                    messages.SUCCESS,
                )

    def _confirmation(self, request, runs: list[JobRun], ctl: Control, *, form_url: str,
                      cancel_url: str) -> TemplateResponse:
        rows = [
            {"run": run, "progress": progress_of(run), "applies": ctl.allows(run)}
            for run in runs
        ]
        context = {
            **self.admin_site.each_context(request),
            **target_context(request),
            "title": f"{ctl.label}: are you sure?",
            "opts": self.model._meta,
            "control": ctl,
            "rows": rows,
            "applicable": sum(r["applies"] for r in rows),
            "form_url": form_url,
            "cancel_url": cancel_url,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/migrations_worker/jobrun/confirm_control.html",
                                context)

    # -- one run's page ------------------------------------------------------------------------------

    def get_urls(self):
        urls = super().get_urls()
        control_view = self.admin_site.admin_view(self.control_view)
        return [
            path("<int:run_id>/control/<str:verb>/", control_view,
                 name="migrations_worker_jobrun_control"),
            *urls,
        ]

    def control_view(self, request: HttpRequest, run_id: int, verb: str) -> HttpResponse:
        """GET: the confirmation page for one run; POST with post=yes: do it."""
        run = get_object_or_404(self.get_queryset(request), pk=run_id)
        if not (self.has_view_permission(request, run) and self.has_operate_permission(request)):
            raise PermissionDenied
        ctl = CONTROLS.get(verb)
        if ctl is None:
            raise PermissionDenied
        run_url = (reverse("admin:migrations_worker_jobrun_change", args=[run.pk])
                   + targeting.query(run._state.db))
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._apply(request, [run], ctl)
            return HttpResponseRedirect(run_url)
        return self._confirmation(request, [run], ctl, form_url=request.get_full_path(),
                                  cancel_url=run_url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The run's page; an id that is not a number is left to Django's own lookup, which
        answers it as a run that does not exist (a filter on it would raise: a 500)."""
        run = (self.get_queryset(request).filter(pk=int(object_id)).first()
               if is_run_id(object_id) else None)
        if run is not None:
            extra_context = {**(extra_context or {}), **self.run_page_context(request, run)}
        return super().change_view(request, object_id, form_url, extra_context)

    def run_page_context(self, request: HttpRequest, run: JobRun) -> dict:
        using = run._state.db
        counts = dict(run.batches.values_list("status").annotate(n=Count("id")).order_by())
        shown_status = request.GET.get("batch_status", "")
        if shown_status not in BatchStatus.values:
            shown_status = ""
        batches = run.batches.order_by("-start_key")
        if shown_status:
            batches = batches.filter(status=shown_status)
        filters = [{"status": "", "label": "all", "count": sum(counts.values())}] + [
            {"status": s.value, "label": s.label, "count": counts.get(s.value, 0)}
            for s in BatchStatus
        ]
        controls = []
        if self.has_operate_permission(request):
            controls = [
                {"control": c, "url": reverse("admin:migrations_worker_jobrun_control",
                                              args=[run.pk, c.verb]) + targeting.query(using)}
                for c in CONTROLS.values() if c.allows(run)
            ]
        p = progress_of(run)
        return {
            **target_context(request),
            "run": run,
            "progress": p,
            "hold_text": hold_text(p),
            "rows_text": f"{p.rows_done:,} / ~{p.estimated_total:,}",
            "rate_text": f"{p.rows_per_second:,.0f}" if p.rows_per_second else "-",
            "batch_size_text": f"{p.batch_size:,}",
            "heartbeat_text": run_payload(run)["heartbeat_age_seconds"],
            "report_items": [
                (name.replace("_", " "), f"{value:,}" if isinstance(value, int) else value)
                for name, value in sorted((run.report or {}).items())
            ],
            "progress_bar": progress_bar(run),
            "status_badge": status_badge(run),
            "elapsed": format_duration(
                ((run.finished_at or run.heartbeat_at) - run.started_at).total_seconds()
                if run.started_at and (run.finished_at or run.heartbeat_at) else None
            ),
            "controls": controls,
            "batch_filters": filters,
            "batch_status": shown_status,
            "batches": list(batches[:BATCHES_SHOWN]),
            "batches_total": batches.count(),
            "batches_shown_max": BATCHES_SHOWN,
            "batch_errors": list(run.batches.exclude(error="").order_by("start_key")[:50]),
            "quarantined": list(run.quarantined.order_by("key", "id")[:QUARANTINED_SHOWN]),
            "quarantined_open": run.quarantined.filter(resolution=Resolution.OPEN).count(),
            "events": list(run.events.order_by("-id")[:200]),
            "chart": batch_chart(run),
            "flower_url": conf.flower_url(),
        }
