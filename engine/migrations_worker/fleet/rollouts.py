"""A rollout: one deploy stage across many targets, in waves, as a state machine in the control
database, advanced by whoever runs next.

`advance` is one tick: under a row lock on the rollout it looks at its targets and sends the
steps due (fleet/step.py, run by any Celery worker); the `fleet rollout` command calls it in its
loop, beat calls it every few seconds (`advance_rollouts`), and a worker calls it when a step
ends, so the death of any one of them loses nothing and needs no clean-up. The rules:

- the first wave (the canary) runs alone; a wave starts only when every target of the wave before
  it has passed (its stage done and verified) or was skipped by an operator;
- within a wave, at most `parallel` targets are worked at once;
- a failed target halts the rollout at once: no other step is sent, no target of a later wave is
  touched, and the error names the target, why, and the commands to go on;
- a target whose server does not answer is held, not failed: it is tried again until it answers
  (the others of its wave go on; the next wave waits for it).

A step is sent with a deadline (`next_step_at`): a step lost with its worker, or its message, is
sent again when it passes. Two steps of one target never overlap: each takes that target's deploy
lock (`deploy.lock`), and one of an older attempt (before a retry) does nothing.

The control database is `default`, as for the server slots: every worker of every host reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.utils import timezone

from .. import conf
from ..celery import app
from ..exceptions import InvalidInput, InvalidTransition, RolloutOpen
from ..models import (
    JobRun,
    Rollout,
    RolloutEvent,
    RolloutStatus,
    RolloutTarget,
    RunStatus,
    TargetStatus,
)
from ..runs import dispatch, quarantine
from ..runs.server_slots import server_of
from . import waves

CONTROL = DEFAULT_DB_ALIAS
STEP_TASK = "migrations_worker.fleet_step"
STAGES = ("pre", "post")
DEFAULT_PARALLEL = 4  # targets of a wave worked at once


def rollouts():
    return Rollout.objects.using(CONTROL)


def open_rollout() -> Rollout | None:
    """The rollout that is not over (at most one: a partial unique index keeps it so)."""
    return rollouts().filter(status__in=RolloutStatus.open()).first()


def event(rollout: Rollout, kind: str, message: str, *, target: str = "", actor: str = "") -> None:
    RolloutEvent.objects.using(CONTROL).create(rollout=rollout, kind=kind, message=message,
                                               target=target, actor=actor)


def start(stage: str, *, waves_spec: str | None, parallel: int | None,
          select: Mapping[str, str] | None, actor: str) -> tuple[Rollout, bool]:
    """The open rollout of `stage` (True: resumed), or a new one over the selected targets.

    Asking again for the rollout that is open, with the same options or none, resumes it: that is
    what an operator does after the process that started it died. Asking for another one while
    one is open is refused, naming it."""
    if stage not in STAGES:
        raise InvalidInput(f"a rollout runs one stage: pre or post, not {stage!r}")
    if parallel is not None and parallel < 1:
        raise InvalidInput(f"--parallel {parallel}: at least one target at a time")
    found = open_rollout()
    if found is not None:
        asked = {"stage": stage, "waves": waves_spec, "parallel": parallel,
                 "select": dict(select) if select else None}
        held = {"stage": found.stage, "waves": found.waves_spec, "parallel": found.parallel,
                "select": found.select}
        differ = [key for key, value in asked.items() if value is not None and value != held[key]]
        if differ:
            raise RolloutOpen(
                f"rollout #{found.pk} ({found.stage} stage, {found.status}) is not over, and was "
                f"started with {', '.join(f'{k}={held[k]!r}' for k in differ)}: re-run it as it "
                f"was started (`python manage.py fleet rollout --stage {found.stage}` resumes it), "
                "or see `python manage.py fleet status`")
        return found, True
    spec = waves_spec or waves.DEFAULT_WAVES
    declared = conf.targets()
    names = waves.selected(declared, select or {})
    cut = waves.cut(names, spec)
    try:
        with transaction.atomic(using=CONTROL):
            rollout = rollouts().create(stage=stage, waves_spec=spec, select=dict(select or {}),
                                        parallel=parallel or DEFAULT_PARALLEL, actor=actor)
            position = 0
            for number, wave in enumerate(cut, start=1):
                for name in wave:
                    RolloutTarget.objects.using(CONTROL).create(
                        rollout=rollout, target=name, wave=number, position=position,
                        server=server_of(name))
                    position += 1
            event(rollout, "started", f"{stage} stage over {len(names)} target(s) in "
                  f"{len(cut)} wave(s) ({spec}), {rollout.parallel} at a time; canary: "
                  f"{', '.join(cut[0])}", actor=actor)
    except IntegrityError as exc:  # another command created one between our look and now
        raise RolloutOpen("another fleet rollout was started just now: "
                          "see `python manage.py fleet status`") from exc
    return rollout, False


def current_wave(targets: list[RolloutTarget]) -> int | None:
    """The lowest wave not through yet; None when every target is."""
    left = [t.wave for t in targets if t.status not in TargetStatus.through()]
    return min(left) if left else None


def advance(rollout_id: int, actor: str = "") -> Rollout:
    """One tick of the rollout (see the module's docstring); returns it as it now stands."""
    with transaction.atomic(using=CONTROL):
        rollout = rollouts().select_for_update().get(pk=rollout_id)
        if rollout.status != RolloutStatus.RUNNING:
            return rollout
        targets = list(rollout.targets.select_for_update().order_by("wave", "position"))
        failed = [t for t in targets if t.status == TargetStatus.FAILED]
        if failed:
            halt(rollout, failed[0], actor)
            return rollout
        wave = current_wave(targets)
        if wave is None:
            rollout.status, rollout.finished_at = RolloutStatus.DONE, timezone.now()
            rollout.save(update_fields=["status", "finished_at", "updated_at"])
            passed = sum(t.status == TargetStatus.PASSED for t in targets)
            event(rollout, "done", f"every target through: {passed} passed, "
                  f"{len(targets) - passed} skipped", actor=actor)
            return rollout
        now = timezone.now()
        in_wave = [t for t in targets if t.wave == wave]
        if not any(t.started_at for t in in_wave):
            event(rollout, "wave", f"wave {wave} starts: {', '.join(t.target for t in in_wave)}"
                  + (" (the canary, alone)" if wave == 1 else ""), actor=actor)
        active = [t for t in in_wave if t.status in TargetStatus.active()]
        for target in active:
            if target.next_step_at is None or target.next_step_at <= now:
                send(rollout, target)
        for target in [t for t in in_wave if t.status == TargetStatus.PENDING][
                :max(0, rollout.parallel - len(active))]:
            target.status, target.started_at = TargetStatus.RUNNING, now
            target.attempt += 1
            event(rollout, "started", f"wave {wave}: {rollout.stage} stage starts",
                  target=target.target, actor=actor)
            send(rollout, target)
    return rollout


def send(rollout: Rollout, target: RolloutTarget) -> None:
    """Ask a worker for the target's next step, once the tick commits; if nothing reports by
    `next_step_at`, the next tick asks again."""
    target.next_step_at = timezone.now() + timedelta(seconds=float(conf.get("FLEET_RESEND_SECONDS")))
    target.save(update_fields=["status", "started_at", "attempt", "next_step_at", "updated_at"])
    args = (rollout.pk, target.target, rollout.stage, target.attempt)
    transaction.on_commit(lambda: app.send_task(STEP_TASK, args, retry=False,
                                                queue=conf.get("QUEUE")), using=CONTROL)


def halt(rollout: Rollout, target: RolloutTarget, actor: str = "") -> None:
    """Stop the rollout at a failed target, saying what to do (the caller holds the row lock)."""
    rollout.status = RolloutStatus.HALTED
    rollout.error = (
        f"target {target.target} (wave {target.wave}, server {target.server}) failed its "
        f"{rollout.stage} stage: {target.error}. No other target is touched until an operator "
        f"acts: fix the cause, then `python manage.py fleet retry {target.target} --reason "
        f"'...'`, or leave it out with `python manage.py fleet skip {target.target} --reason "
        "'...'`")
    rollout.save(update_fields=["status", "error", "updated_at"])
    event(rollout, "halted", rollout.error, target=target.target, actor=actor)


def settle_halt(rollout: Rollout, actor: str) -> None:
    """After an operator dealt with a failed target: the rollout goes on, unless another target
    is still failed; then it stays halted, its message now naming that one."""
    if rollout.status != RolloutStatus.HALTED:
        return
    failed = rollout.targets.filter(status=TargetStatus.FAILED).order_by("wave", "position").first()
    if failed is not None:
        halt(rollout, failed, actor)
        return
    rollout.status, rollout.error = RolloutStatus.RUNNING, ""
    rollout.save(update_fields=["status", "error", "updated_at"])


def require_open(status: tuple[str, ...] | None = None) -> Rollout:
    rollout = open_rollout()
    if rollout is None:
        raise InvalidTransition("no fleet rollout is open: `python manage.py fleet status` shows "
                                "the last one")
    if status is not None and rollout.status not in status:
        raise InvalidTransition(f"rollout #{rollout.pk} is {rollout.status}, not "
                                f"{' or '.join(status)}")
    return rollout


def pause(actor: str, reason: str = "") -> Rollout:
    """No step is sent until `resume`; steps under way finish, and data jobs already started
    go on (pause those with `backfill pause JOB --database NAME`)."""
    with transaction.atomic(using=CONTROL):
        rollout = rollouts().select_for_update().get(pk=require_open((RolloutStatus.RUNNING,)).pk)
        rollout.status = RolloutStatus.PAUSED
        rollout.save(update_fields=["status", "updated_at"])
        event(rollout, "paused", reason or "paused", actor=actor)
    return rollout


def resume(actor: str, reason: str = "") -> Rollout:
    with transaction.atomic(using=CONTROL):
        rollout = rollouts().select_for_update().get(pk=require_open((RolloutStatus.PAUSED,)).pk)
        rollout.status = RolloutStatus.RUNNING
        rollout.save(update_fields=["status", "updated_at"])
        event(rollout, "resumed", reason or "resumed", actor=actor)
    return advance(rollout.pk, actor)


def operator_target(rollout: Rollout, name: str, reason: str, verb: str) -> RolloutTarget:
    if not reason.strip():
        raise InvalidInput(f"fleet {verb} {name}: give a --reason (it goes in the rollout's "
                           "timeline for whoever reads it next)")
    target = rollout.targets.select_for_update().filter(target=name).first()
    if target is None:
        raise InvalidInput(f"{name!r} is not a target of rollout #{rollout.pk}: its targets are "
                           f"{', '.join(rollout.targets.values_list('target', flat=True))}")
    return target


def retry(name: str, *, reason: str, actor: str) -> Rollout:
    """Work a failed (or held) target again from where its own tables say it stands, and let the
    rollout go on. Its stopped data jobs go on first (`restart_runs`)."""
    with transaction.atomic(using=CONTROL):
        retried(operator_target(require_open(), name, reason, "retry"))
    restart_runs(name, actor)
    with transaction.atomic(using=CONTROL):
        rollout = rollouts().select_for_update().get(pk=require_open().pk)
        target = retried(operator_target(rollout, name, reason, "retry"))
        target.status, target.error, target.reason = TargetStatus.RUNNING, "", reason
        target.attempt += 1
        target.next_step_at = None
        target.save(update_fields=["status", "error", "reason", "attempt", "next_step_at",
                                   "updated_at"])
        settle_halt(rollout, actor)
        event(rollout, "retry", reason, target=name, actor=actor)
    return advance(rollout.pk, actor)


def restart_runs(using: str, actor: str) -> None:
    """What a retry of a target does to its stopped jobs, the operator having fixed the cause:
    a failed run is retried (`backfill retry`); a paused one (an operator's pause, or the engine's
    over its quarantine budget) has its quarantined keys walked again and resumes."""
    for run in JobRun.objects.using(using).filter(status=RunStatus.FAILED):
        dispatch.retry(run, actor=actor, using=using)
    for run in JobRun.objects.using(using).filter(status__in=(RunStatus.PAUSED, RunStatus.PAUSING)):
        quarantine.requeue(run, using=using)
        dispatch.resume(run, actor=actor, using=using)


def retried(target: RolloutTarget) -> RolloutTarget:
    if target.status not in (TargetStatus.FAILED, TargetStatus.HELD):
        raise InvalidTransition(f"{target.target} is {target.status}: only a failed or held "
                                "target is retried")
    return target


def skip(name: str, *, reason: str, actor: str) -> Rollout:
    """Leave a target out of this rollout (its own tables keep where it stood; its next
    rollout picks it up): the rollout goes on without it."""
    with transaction.atomic(using=CONTROL):
        rollout = rollouts().select_for_update().get(pk=require_open().pk)
        target = operator_target(rollout, name, reason, "skip")
        if target.status in TargetStatus.through():
            raise InvalidTransition(f"{name} is already {target.status}")
        target.status, target.reason, target.finished_at = TargetStatus.SKIPPED, reason, timezone.now()
        target.attempt += 1  # a step of it still under way does nothing more
        target.save(update_fields=["status", "reason", "finished_at", "attempt", "updated_at"])
        settle_halt(rollout, actor)
        event(rollout, "skipped", reason, target=name, actor=actor)
    return advance(rollout.pk, actor)


def advance_open(actor: str) -> Rollout | None:
    """Advance the open rollout, if one runs (beat's task, and a step's end)."""
    rollout = open_rollout()
    if rollout is None or rollout.status != RolloutStatus.RUNNING:
        return rollout
    return advance(rollout.pk, actor)
