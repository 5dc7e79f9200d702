"""Where a rollout stands, as data: `fleet status --json`, `/ops/fleet.json`, the admin's fleet
page and the metrics all read this, so they never disagree. It reads the control database only:
what each target's last step saw (its jobs' progress, holds, errors), not the targets themselves,
so a page over fifty databases opens no connection to any of them.
"""

from __future__ import annotations

from django.utils import timezone

from ..models import Rollout, RolloutTarget, TargetStatus
from .rollouts import current_wave, rollouts


def latest(rollout_id: int | None = None) -> Rollout | None:
    """The rollout asked for, else the newest one."""
    found = rollouts()
    return found.filter(pk=rollout_id).first() if rollout_id is not None else found.first()


def recent(limit: int = 20) -> list[dict]:
    """The newest rollouts, one line each: what the fleet page and `/ops/fleet.json` offer to
    open instead of the latest."""
    return [{"id": r.pk, "stage": r.stage, "status": r.status, "actor": r.actor,
             "created_at": r.created_at.isoformat(),
             "finished_at": r.finished_at.isoformat() if r.finished_at else None}
            for r in rollouts()[:limit]]


def eta_seconds(target: RolloutTarget) -> float | None:
    """A waiting target's ETA: its slowest job's; None when unknown."""
    etas = [job.get("eta_seconds") for job in target.jobs if job.get("status") != "finished"]
    known = [eta for eta in etas if eta is not None]
    return max(known) if known and len(known) == len(etas) else None


def target_view(target: RolloutTarget) -> dict:
    started, finished = target.started_at, target.finished_at
    return {
        "target": target.target, "server": target.server, "wave": target.wave,
        "status": target.status, "detail": target.detail, "error": target.error,
        "reason": target.reason, "attempt": target.attempt, "steps": target.steps,
        "applied": target.applied, "jobs": target.jobs, "eta_seconds": eta_seconds(target),
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
        "seconds": ((finished or timezone.now()) - started).total_seconds() if started else None,
    }


def snapshot(rollout: Rollout | None) -> dict:
    """The rollout, its waves with their targets, counts by status and its timeline."""
    if rollout is None:
        return {"rollout": None, "waves": [], "counts": {}, "events": []}
    targets = list(rollout.targets.order_by("wave", "position"))
    waves: dict[int, list[dict]] = {}
    for target in targets:
        waves.setdefault(target.wave, []).append(target_view(target))
    counts = {status.value: sum(t.status == status for t in targets) for status in TargetStatus}
    through = [t for t in targets if t.status in TargetStatus.through()]
    current = current_wave(targets)
    return {
        "rollout": {
            "id": rollout.pk, "stage": rollout.stage, "status": rollout.status,
            "waves": rollout.waves_spec, "select": rollout.select, "parallel": rollout.parallel,
            "error": rollout.error, "actor": rollout.actor, "current_wave": current,
            "targets": len(targets), "through": len(through),
            "created_at": rollout.created_at.isoformat(),
            "finished_at": rollout.finished_at.isoformat() if rollout.finished_at else None,
        },
        "waves": [{"wave": number, "canary": number == 1, "targets": members}
                  for number, members in sorted(waves.items())],
        "counts": counts,
        "events": [{"at": e.at.isoformat(), "target": e.target, "kind": e.kind, "actor": e.actor,
                    "message": e.message} for e in rollout.events.order_by("at", "id")],
    }
