"""Runs and batches in the Django admin: what an operator looks at while the jobs run.

The runs list shows a live progress bar, status, rows/s, ETA and hold reasons (updated in place
from the status API, no reload); a run's page shows its progress, a chart of batch size and
duration over time, the keys it quarantined (bad rows set aside, open or accepted), its errors
with their batches, its batches (filterable by status) and its status-change log. Quarantined
keys also have a list of their own, across runs.

Only staff holding `migrations_worker.operate_jobrun` see and may use pause/resume/cancel/retry,
each behind a confirmation page; every other staff user with view permission gets the same pages
read-only. The actions go through `control`, like the CLI's, so both validate and log alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from .exceptions import MigrationsWorkerError
from .models import BatchStatus, JobBatch, JobRun, QuarantinedKey, Resolution, RunStatus
from .ops.status import run_payload
from .runs import control, dispatch
from .runs.progress import format_duration, hold_text, progress_of

OPERATE = "migrations_worker.operate_jobrun"
# What an operator needs: see runs, batches and the task results, and steer runs.
OPERATOR_PERMISSIONS = (
    ("migrations_worker", "operate_jobrun"),
    ("migrations_worker", "view_jobrun"),
    ("migrations_worker", "view_jobbatch"),
    ("migrations_worker", "view_jobrunevent"),
    ("migrations_worker", "view_quarantinedkey"),
    ("django_celery_results", "view_taskresult"),
    ("django_celery_results", "view_groupresult"),
)
OPERATORS_GROUP = "job operators"
BATCHES_SHOWN = 200
QUARANTINED_SHOWN = 200
CHART_POINTS = 600
S = RunStatus


def operators_group() -> Group:
    """The group whose members may steer runs (created, and its permissions set, on first use)."""
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    wanted = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in OPERATOR_PERMISSIONS
    ]
    group.permissions.add(*wanted)
    return group


def ensure_operator(username: str, password: str) -> User:
    """A staff login in the operators group with this password (created or updated): the demo's
    `operator`, and the operator of the browser tests."""
    user, _ = User.objects.get_or_create(username=username)
    user.is_staff = True
    user.is_active = True
    user.set_password(password)
    user.save()
    user.groups.add(operators_group())
    return user


@dataclass(frozen=True)
class Control:
    """One operator action as the admin offers it: its wording, and what the operator is told
    before confirming."""

    verb: str
    label: str
    function: Callable[..., JobRun]
    done: str
    explains: str
    applies_to: tuple[str, ...]
    refusal: str

    @property
    def action_name(self) -> str:
        return f"{self.verb}_runs"


CONTROLS = {
    c.verb: c
    for c in (
        Control("pause", "Pause", control.pause, "pause requested",
                "Workers finish the batch in hand, then stop. Nothing is lost: Resume continues "
                "from the next batch.", (S.PENDING, S.RUNNING), "only a pending or running run "
                "can be paused"),
        Control("resume", "Resume", dispatch.resume, "resumed",
                "The run goes back to the Celery workers and continues from the next batch.",
                (S.PAUSED, S.PAUSING), "only a paused run can be resumed"),
        Control("cancel", "Cancel", control.cancel, "cancel requested",
                "The run stops between batches and cannot be resumed. Work already done stays "
                "done; a gated migration waits until a new run of the job finishes.",
                (S.PENDING, S.RUNNING, S.PAUSING, S.PAUSED, S.FAILED),
                "a finished, cancelled or cancelling run cannot be cancelled"),
        Control("retry", "Retry failed batches", dispatch.retry, "failed batches requeued",
                "Failed batches and open quarantined keys go back in the queue with fresh attempts "
                "(a run whose verification failed walks its range again), and the run continues "
                "where it stopped. Fix the cause of the error first.",
                (S.FAILED,), "only a failed run can be retried"),
    )
}


class ReadOnlyAdmin(admin.ModelAdmin):
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


@admin.register(JobRun)
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
                done = ctl.function(run, actor=actor)
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
            {"run": run, "progress": progress_of(run), "applies": run.status in ctl.applies_to}
            for run in runs
        ]
        context = {
            **self.admin_site.each_context(request),
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
        run = get_object_or_404(JobRun, pk=run_id)
        if not (self.has_view_permission(request, run) and self.has_operate_permission(request)):
            raise PermissionDenied
        ctl = CONTROLS.get(verb)
        if ctl is None:
            raise PermissionDenied
        run_url = reverse("admin:migrations_worker_jobrun_change", args=[run.pk])
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._apply(request, [run], ctl)
            return HttpResponseRedirect(run_url)
        return self._confirmation(request, [run], ctl, form_url=request.path, cancel_url=run_url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = JobRun.objects.filter(pk=object_id).first()
        if run is not None:
            extra_context = {**(extra_context or {}), **self.run_page_context(request, run)}
        return super().change_view(request, object_id, form_url, extra_context)

    def run_page_context(self, request: HttpRequest, run: JobRun) -> dict:
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
                                              args=[run.pk, c.verb])}
                for c in CONTROLS.values() if run.status in c.applies_to
            ]
        p = progress_of(run)
        return {
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
            "flower_url": getattr(settings, "MW_FLOWER_URL", ""),
        }


def batch_chart(run: JobRun) -> SafeString:
    """Batch size and duration over time, as inline SVG (no script, no CDN): how the throttle
    moved the batch size, and what each batch cost. Failed attempts are drawn in red."""
    points = list(
        run.batches.exclude(started_at=None).exclude(duration_ms=None)
        .order_by("started_at").values_list("started_at", "batch_size", "duration_ms", "status",
                                            "start_key", "end_key", "rows_affected")
    )
    if not points:
        return mark_safe('<p class="mw-muted">No batch has finished yet.</p>')
    step = max(1, len(points) // CHART_POINTS)
    points = points[::step]
    t0 = points[0][0]
    seconds = [(p[0] - t0).total_seconds() for p in points]
    span = max(seconds[-1], 1e-6)
    max_size = max(p[1] for p in points) or 1
    max_ms = max(p[2] for p in points) or 1
    width, left, right = 900, 70, 20
    plot = width - left - right

    def x(s: float) -> float:
        return left + plot * s / span if len(points) > 1 else left + plot / 2

    def panel(top: int, height: int, values: list[float], top_value: float, colour: str,
              label: str, unit: str) -> str:
        ys = [top + height - height * v / top_value for v in values]
        line = " ".join(f"{x(s):.1f},{y:.1f}" for s, y in zip(seconds, ys, strict=True))
        dots = "".join(
            f'<circle cx="{x(s):.1f}" cy="{y:.1f}" r="2.5" fill="'
            f'{"#c0392b" if p[3] == BatchStatus.FAILED or (p[3] == BatchStatus.PENDING) else colour}'
            f'"><title>({p[4]}, {p[5]}]: {p[1]:,} keys, {p[6]:,} rows, {p[2]:,.0f} ms</title></circle>'
            for s, y, p in zip(seconds, ys, points, strict=True)
        )
        return (
            f'<text x="{left - 8}" y="{top + 4}" text-anchor="end">{top_value:,.0f}</text>'
            f'<text x="{left - 8}" y="{top + height}" text-anchor="end">0</text>'
            f'<text x="{left + 4}" y="{top - 4}" class="mw-chart-label">{label} ({unit})</text>'
            f'<line x1="{left}" y1="{top + height}" x2="{width - right}" y2="{top + height}" '
            f'stroke="#999"/><line x1="{left}" y1="{top}" x2="{left}" y2="{top + height}" stroke="#999"/>'
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5" '
            f'stroke-opacity="0.6"/>{dots}'
        )

    svg = (
        f'<svg class="mw-chart" viewBox="0 0 {width} 290" role="img" '
        f'aria-label="batch size and duration over time">'
        + panel(20, 100, [p[1] for p in points], max_size, "#2a6ebb", "batch size", "keys")
        + panel(160, 100, [p[2] for p in points], max_ms, "#d9822b", "duration", "ms")
        + f'<text x="{left}" y="282">0 s</text>'
        f'<text x="{width - right}" y="282" text-anchor="end">{format_duration(span)} '
        f'after the first batch</text></svg>'
    )
    return mark_safe(svg)  # noqa: S308 - built from numbers and fixed text only


@admin.register(JobBatch)
class JobBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "run_link", "start_key", "end_key", "status", "attempts", "batch_size",
        "rows_affected", "duration_ms", "worker", "error",
    )
    list_filter = ("status", "run__job_name", "run")
    list_select_related = ("run",)
    search_fields = ("error", "worker")

    @admin.display(description="run", ordering="run")
    def run_link(self, batch: JobBatch) -> SafeString:
        url = reverse("admin:migrations_worker_jobrun_change", args=[batch.run_id])
        return format_html('<a href="{}">{}</a>', url, batch.run)


@admin.register(QuarantinedKey)
class QuarantinedKeyAdmin(ReadOnlyAdmin):
    """Every key a run set aside, across runs: what to fix, or what was accepted and by whom.
    Accepting is the CLI's (`backfill quarantine JOB --accept`), a decision made per run."""

    list_display = ("key", "run_link", "resolution", "attempts", "sqlstate", "created_at",
                    "resolved_by", "error")
    list_filter = ("resolution", "run__job_name", "sqlstate")
    list_select_related = ("run",)
    search_fields = ("error",)

    @admin.display(description="run", ordering="run")
    def run_link(self, key: QuarantinedKey) -> SafeString:
        url = reverse("admin:migrations_worker_jobrun_change", args=[key.run_id])
        return format_html('<a href="{}">{}</a>', url, key.run)
