"""Runs and batches in the Django admin: what an operator looks at while the jobs run. This
module registers the engine's models (Django's autodiscovery reads it) and sets up who may steer
runs; the runs' pages and controls are `ops/run_admin.py`, the batch chart `ops/chart.py`.

The runs list shows a live progress bar, status, rows/s, ETA and holds with their kind (updated
in place from the status API, no reload); a run's page shows its progress, a chart of batch size
and duration over time, the keys it quarantined (bad rows set aside, open or accepted), its
errors with their batches, its batches (filterable by status) and its status-change log.
Quarantined keys also have a list of their own, across runs. Every list and page shows one
target's (the `target` selector, `?database=NAME`; `ops/target_admin.py`) and says which.
The Rollout model's list is the fleet page (`ops/fleet_admin.py`): a fleet rollout, wave by wave.

Only staff holding `migrations_worker.operate_jobrun` see and may use pause/resume/cancel/retry,
each behind a confirmation page; every other staff user with view permission gets the same pages
read-only. The controls are `runs.controls`, the table `backfill` reads too, so both validate,
refuse and log alike.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.utils.safestring import SafeString

from .models import JobBatch, JobRun, QuarantinedKey, Rollout
from .ops.fleet_admin import RolloutAdmin
from .ops.run_admin import OPERATE, JobRunAdmin, ReadOnlyAdmin
from .ops.target_admin import RunFilter, run_link

__all__ = ["OPERATE", "ensure_operator", "operators_group"]

# What an operator needs: see runs, batches and the task results, and steer runs and rollouts.
OPERATOR_PERMISSIONS = (
    ("migrations_worker", "operate_jobrun"),
    ("migrations_worker", "view_jobrun"),
    ("migrations_worker", "view_jobbatch"),
    ("migrations_worker", "view_jobrunevent"),
    ("migrations_worker", "view_quarantinedkey"),
    ("migrations_worker", "view_rollout"),
    ("migrations_worker", "change_rollout"),
    ("django_celery_results", "view_taskresult"),
    ("django_celery_results", "view_groupresult"),
)
OPERATORS_GROUP = "job operators"


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


admin.site.register(JobRun, JobRunAdmin)
admin.site.register(Rollout, RolloutAdmin)


@admin.register(JobBatch)
class JobBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "run_link", "start_key", "end_key", "status", "attempts", "batch_size",
        "rows_affected", "duration_ms", "worker", "error",
    )
    list_filter = ("status", "run__job_name", RunFilter)
    list_select_related = ("run",)
    search_fields = ("error", "worker")

    @admin.display(description="run", ordering="run")
    def run_link(self, batch: JobBatch) -> SafeString:
        return run_link(batch.run_id, batch._state.db, batch.run)


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
        return run_link(key.run_id, key._state.db, key.run)
