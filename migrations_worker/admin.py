"""Runs and batches in the Django admin: read-only for staff, actions for operators.

Only users with `migrations_worker.operate_jobrun` see and may use pause/resume/cancel/retry;
every other staff user with view permission gets a read-only view.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from . import control
from .models import JobBatch, JobRun, JobRunEvent
from .progress import progress_of
from .states import InvalidTransition

OPERATE = "migrations_worker.operate_jobrun"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class JobRunEventInline(admin.TabularInline):
    model = JobRunEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_status", "to_status", "actor", "message")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "job_name", "status", "progress_bar", "rows_per_second", "eta", "batch_size",
        "hold_or_error", "started_at",
    )
    list_filter = ("status", "job_name")
    search_fields = ("job_name",)
    actions = ("pause_runs", "resume_runs", "cancel_runs", "retry_runs")
    inlines = (JobRunEventInline,)
    readonly_fields = [f.name for f in JobRun._meta.fields]

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm(OPERATE)

    @admin.display(description="progress")
    def progress_bar(self, run: JobRun) -> str:
        percent = progress_of(run).percent
        return format_html(
            '<progress value="{}" max="100" title="{}%"></progress> {}%',
            f"{percent:.1f}", f"{percent:.1f}", f"{percent:.1f}",
        )

    @admin.display(description="rows/s")
    def rows_per_second(self, run: JobRun) -> str:
        rate = progress_of(run).rows_per_second
        return f"{rate:,.0f}" if rate else "-"

    @admin.display(description="ETA")
    def eta(self, run: JobRun) -> str:
        return progress_of(run).eta

    @admin.display(description="hold / last error")
    def hold_or_error(self, run: JobRun) -> str:
        p = progress_of(run)
        return p.hold_reason or p.error[:120]

    def _apply(self, request, queryset, verb: str, action) -> None:
        for run in queryset:
            try:
                action(run, actor=f"admin:{request.user.get_username()}")
            except (InvalidTransition, control.ControlError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{run.job_name} #{run.pk}: {verb}", messages.SUCCESS)

    @admin.action(description="Pause selected runs", permissions=["operate"])
    def pause_runs(self, request, queryset) -> None:
        self._apply(request, queryset, "pause requested", control.pause)

    @admin.action(description="Resume selected runs", permissions=["operate"])
    def resume_runs(self, request, queryset) -> None:
        self._apply(request, queryset, "resumed", control.resume)

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_runs(self, request, queryset) -> None:
        self._apply(request, queryset, "cancel requested", control.cancel)

    @admin.action(description="Retry failed batches of selected runs", permissions=["operate"])
    def retry_runs(self, request, queryset) -> None:
        self._apply(request, queryset, "failed batches requeued", control.retry)


@admin.register(JobBatch)
class JobBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "run", "start_key", "end_key", "status", "attempts", "rows_affected", "duration_ms",
        "worker", "error",
    )
    list_filter = ("status", "run__job_name", "run")
    list_select_related = ("run",)
