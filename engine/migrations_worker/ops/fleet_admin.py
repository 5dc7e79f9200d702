"""The fleet page of the admin (registered by `admin.py` as the Rollout model's list): where a
fleet rollout stands, wave by wave, read from `fleet.view.snapshot` like `fleet status`,
`/ops/fleet.json` and the metrics, so none of them disagree.

It shows the latest rollout (`?rollout=ID` an older one, each listed at the foot): its status,
and when halted the error with the command to go on; its waves (the first is the canary) with
each target's server, status, what its last step saw, the data jobs it waits for (progress bar,
rows, ETA, hold), its error and the operator's reason; and the timeline. The page follows the
rollout from `/ops/fleet.json` while it is open.

Pause, resume, retry and skip (`fleet.rollouts`, as `manage.py fleet` does them) are offered to
staff holding `migrations_worker.change_rollout`, as POST forms; retry and skip take a reason,
which goes in the timeline. Every other staff user who may view rollouts gets the page
read-only. Nothing of a rollout is edited as a form: the generic add, change and delete pages
are off.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ..exceptions import MigrationsWorkerError
from ..fleet import rollouts, view
from ..models import RolloutStatus, TargetStatus
from ..runs.dispatch import ensure_broker
from ..runs.progress import format_duration
from .fleet_status import ROLLOUT_PARAM, ROLLOUTS_LISTED, rollout_id

OPERATE_FLEET = "migrations_worker.change_rollout"
VERBS = ("pause", "resume", "retry", "skip")


def when(iso: str | None) -> datetime | None:
    """A time of the snapshot (ISO text, as the JSON carries it) for the template's `date`."""
    return datetime.fromisoformat(iso) if iso else None


def dated(item: dict, *fields: str) -> dict:
    return {**item, **{name: when(item[name]) for name in fields}}


def target_row(target: dict, open_: bool) -> dict:
    """One target as the page shows it: the snapshot's figures, its durations in words and the
    controls that apply to it."""
    status = target["status"]
    return {
        **target,
        "took": format_duration(target["seconds"]) if target["seconds"] is not None else "-",
        "eta": format_duration(target["eta_seconds"]) if target["eta_seconds"] is not None else "",
        "jobs_shown": status == TargetStatus.WAITING or (status == TargetStatus.HELD
                                                         and bool(target["jobs"])),
        "may_retry": open_ and status in (TargetStatus.FAILED, TargetStatus.HELD),
        "may_skip": open_ and status not in TargetStatus.through(),
    }


def page_context(found: dict) -> dict:
    """The snapshot shaped for the template: waves of rows, and which controls apply."""
    rollout = found["rollout"]
    open_ = rollout is not None and rollout["status"] in RolloutStatus.open()
    return {
        "rollout": dated(rollout, "created_at", "finished_at") if rollout else None,
        "rollout_open": open_,
        "waves": [{**wave, "rows": [target_row(t, open_) for t in wave["targets"]]}
                  for wave in found["waves"]],
        "counts": [(status, n) for status, n in found["counts"].items() if n],
        "events": [dated(event, "at") for event in reversed(found["events"])],
        "may_pause": open_ and rollout["status"] == RolloutStatus.RUNNING,
        "may_resume": open_ and rollout["status"] == RolloutStatus.PAUSED,
    }


class RolloutAdmin(admin.ModelAdmin):
    """The Rollout model's list is the fleet page; a rollout's own page opens it on that one."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the generic form; the controls ask for OPERATE_FLEET themselves

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def may_operate(self, request: HttpRequest) -> bool:
        return request.user.is_staff and request.user.has_perm(OPERATE_FLEET)

    def page_url(self, rollout: int | None = None) -> str:
        url = reverse("admin:migrations_worker_rollout_changelist")
        return f"{url}?{ROLLOUT_PARAM}={rollout}" if rollout is not None else url

    def get_urls(self):
        control = self.admin_site.admin_view(self.control_view)
        return [path("control/", control, name="migrations_worker_rollout_control"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        wanted = rollout_id(str(object_id))
        return HttpResponseRedirect(self.page_url(wanted))

    def changelist_view(self, request, extra_context=None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        raw = request.GET.get(ROLLOUT_PARAM)
        wanted = rollout_id(raw) if raw is not None else None
        rollout = view.latest(wanted) if raw is None or wanted is not None else None
        missing = raw is not None and rollout is None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Fleet rollout #{rollout.pk}" if rollout else "Fleet rollouts",
            "opts": self.model._meta,
            **page_context(view.snapshot(rollout)),
            "missing": raw[:40] if missing else None,
            "recent": [dated(r, "created_at", "finished_at") for r in view.recent(ROLLOUTS_LISTED)],
            "may_operate": self.may_operate(request),
            "fleet_json": reverse("mw_ops:fleet") + (f"?{ROLLOUT_PARAM}={rollout.pk}"
                                                     if rollout else ""),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/migrations_worker/rollout/fleet.html", context,
                                status=404 if missing else 200)

    def control_view(self, request: HttpRequest) -> HttpResponse:
        """A control of the open rollout, from the page's forms (POST, CSRF-checked by the admin
        site): what `manage.py fleet pause|resume|retry|skip` does, with the operator as actor."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.may_operate(request):
            raise PermissionDenied
        verb, target = request.POST.get("verb", ""), request.POST.get("target", "")
        reason = request.POST.get("reason", "").strip()
        shown = rollout_id(request.POST.get(ROLLOUT_PARAM, ""))
        back = HttpResponseRedirect(self.page_url(shown))
        open_ = rollouts.open_rollout()
        if verb not in VERBS or open_ is None or open_.pk != shown:
            self.message_user(request, "Nothing was changed: that rollout is not open any more "
                              "(or the form was not one of this page's). Here is where it stands.",
                              messages.WARNING)
            return back
        if verb in ("retry", "skip") and not reason:
            self.message_user(request, f"Nothing was changed: to {verb} {target}, give a reason "
                              "(it goes in the rollout's timeline).", messages.ERROR)
            return back
        actor = f"admin:{request.user.get_username()}"
        try:
            if verb in ("resume", "retry"):
                ensure_broker()  # they send steps: refuse before anything is written
            done = self.apply(verb, target, reason, actor)
        except MigrationsWorkerError as exc:
            self.message_user(request, f"Nothing was changed: {exc}", messages.ERROR)
        else:
            what = {"pause": "paused", "resume": "resumed", "retry": f"{target} retried",
                    "skip": f"{target} skipped"}[verb]
            self.message_user(request, f"Rollout #{done.pk}: {what}; now {done.status}.",
                              messages.SUCCESS)
        return back

    def apply(self, verb: str, target: str, reason: str, actor: str):
        if verb == "pause":
            return rollouts.pause(actor, reason)
        if verb == "resume":
            return rollouts.resume(actor, reason)
        if verb == "retry":
            return rollouts.retry(target, reason=reason, actor=actor)
        return rollouts.skip(target, reason=reason, actor=actor)
