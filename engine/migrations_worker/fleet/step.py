"""One step of one target of a rollout, on whichever worker takes it: apply what its stage
allows, look at its gates' jobs, verify when its stage is done, and record what it saw.

A step does one pass of the deploy (`deploy.executor`, as `migrate_online --stage STAGE` does,
without waiting): the migrations the gates allow are applied and the jobs they wait for enqueued;
the jobs' batches are then worked by every worker, like any run's. The step ends there, and a
later one (`FLEET_POLL_SECONDS` on) passes again. So a worker is held by a step only while a
migration applies, never while data jobs run.

A step records one of: passed (the stage is done and verified: nothing of the stage pending, every
index valid and every constraint validated), waiting (at gates, each job's progress), held (the
target's server does not answer: the reason names it; nothing is lost, the next step tries again),
busy (another deploy of that database holds its deploy lock), or failed (a migration or a gate's
job failed, or the verification did not pass), which halts the rollout.

A step is fenced by the target's attempt: one sent before a retry or a skip does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from .. import conf, pg
from ..deploy import checks as deploy_checks
from ..deploy import lock as deploy_lock
from ..deploy import pending
from ..deploy.events import Applied, Event, StoppedAtGates
from ..deploy.executor import OnlineExecutor
from ..exceptions import DeployLocked, MigrationsWorkerError
from ..models import RolloutStatus, RolloutTarget, RunStatus, TargetStatus
from ..operations import Stage
from ..operations.stage import stage_of
from ..runs import control
from ..runs.progress import hold_text, progress_of
from . import rollouts
from .rollouts import CONTROL

STOPPED = (RunStatus.PAUSING, RunStatus.PAUSED, RunStatus.CANCELLING, RunStatus.CANCELLED)
# How long a step waits for a target's server to answer before holding the target.
CONNECT_SECONDS = 2.0


@dataclass
class Outcome:
    """What a step saw on its target; `status` None: busy, nothing changes but the next look."""

    status: TargetStatus | None
    detail: str
    applied: list[str] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    error: str = ""


class Recorder:
    """The deploy's events, kept for the step's record instead of printed."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.stopped: StoppedAtGates | None = None

    def __call__(self, event: Event) -> None:
        match event:
            case Applied(migration):
                self.applied.append(migration)
            case StoppedAtGates():
                self.stopped = event


def job_views(jobs: list[str], using: str) -> list[dict]:
    """Each gate job's run as it stands, for the fleet's pages (read without the target)."""
    views = []
    for job in jobs:
        run = control.latest_run(job, using=using)
        if run is None:
            views.append({"job": job, "status": "not started"})
            continue
        p = progress_of(run)
        views.append({"job": job, "run": run.pk, "status": p.status, "percent": round(p.percent, 1),
                      "rows_done": p.rows_done, "estimated_total": p.estimated_total,
                      "eta_seconds": p.eta_seconds, "eta": p.eta,
                      "hold": hold_text(p) if p.hold_reason else "", "error": p.error})
    return views


def stopped_jobs(jobs: list[str], using: str) -> list[str]:
    """Gate jobs that will not go on by themselves, each with why: paused (by an operator, or by
    the engine past its quarantine budget: more bad rows than bad data explains) or cancelled.
    A failed one the deploy pass reports itself (JobFailed)."""
    found = []
    for job in jobs:
        run = control.latest_run(job, using=using)
        if run is None or run.status not in STOPPED:
            continue
        # What began the stop (a pause asked for, or over the budget), not how it settled.
        since = run.events.filter(to_status=RunStatus.RUNNING).order_by("-id").values_list(
            "id", flat=True).first() or 0
        why = run.events.filter(to_status__in=STOPPED, id__gt=since).order_by("id").values_list(
            "message", flat=True).first()
        found.append(f"job {job} is {run.status}: {why or 'by an operator'}")
    return found


def verify(using: str, stage: Stage) -> list[str]:
    """Why the stage is not done and sound on `using`, or nothing: what `deploy/deploy.sh`
    checks after its migrate (`--postflight` and `--check --stage`)."""
    problems = [problem.describe() for problem in deploy_checks.schema_problems(using)]
    executor = pending.loader_executor(using)
    problems += [f"{pending.label(m)} is still unapplied" for m in pending.unapplied(executor)
                 if stage_of(m) == stage]
    problems += [f"job {run.job_name} is {run.status}" for run in pending.pending_runs(executor, stage)]
    return problems


def work(using: str, stage: Stage, server: str) -> Outcome:
    """One deploy pass of `stage` on the target `using`, and what it left."""
    error = pg.wait_for_database(CONNECT_SECONDS, database=using)
    if error:
        return Outcome(TargetStatus.HELD, f"server {server} does not answer: {error}")
    recorder = Recorder()
    try:
        deploy_lock.acquire(0, using=using)
    except DeployLocked as exc:
        return Outcome(None, f"busy: {exc}")
    try:
        OnlineExecutor(recorder, verbosity=0, using=using).deploy_pass(
            stage, wait=False, deadline=None, poll=0)
        if recorder.stopped is not None:
            jobs = recorder.stopped.result.jobs
            views = job_views(jobs, using)
            stopped = stopped_jobs(jobs, using)
            if stopped:
                return Outcome(TargetStatus.FAILED, "a gate's job stopped", recorder.applied,
                               views, error="; ".join(stopped))
            return Outcome(TargetStatus.WAITING, f"at the gates of {', '.join(jobs)}",
                           recorder.applied, views)
        problems = verify(using, stage)
        if problems:
            return Outcome(TargetStatus.FAILED, "verification failed", recorder.applied,
                           error="verification: " + "; ".join(problems))
        return Outcome(TargetStatus.PASSED, f"{stage} stage done and verified "
                       "(every index valid, every constraint validated, nothing pending)",
                       recorder.applied)
    except DatabaseError as exc:
        if pg.connection_lost(exc, using=using):
            return Outcome(TargetStatus.HELD, f"server {server} went away: {exc}".strip(),
                           recorder.applied)
        return Outcome(TargetStatus.FAILED, "a migration failed", recorder.applied,
                       error=f"{type(exc).__name__}: {exc}".strip())
    except MigrationsWorkerError as exc:
        return Outcome(TargetStatus.FAILED, "the stage failed", recorder.applied, error=str(exc))
    finally:
        deploy_lock.release(using)


def fenced(target: RolloutTarget, attempt: int) -> bool:
    return (target.rollout.status != RolloutStatus.RUNNING or target.attempt != attempt
            or target.status not in TargetStatus.active())


def run_step(rollout_id: int, name: str, stage: str, attempt: int, worker: str = "") -> str:
    """The task's body: fence, work, record, then advance the rollout. Returns what it did."""
    target = RolloutTarget.objects.using(CONTROL).select_related("rollout").get(
        rollout_id=rollout_id, target=name)
    if fenced(target, attempt):
        return "fenced"
    if name not in conf.targets():
        record(rollout_id, name, attempt, Outcome(
            TargetStatus.FAILED, "not declared", error=f"{name} is not a declared target on "
            f"worker {worker or '?'}: give every worker the same MW_TARGETS_FILE"), worker)
        rollouts.advance(rollout_id, actor=worker)
        return str(TargetStatus.FAILED)
    try:
        outcome = work(name, Stage(stage), target.server)
    except Exception as exc:  # a migration's own code raised: the target fails, the rollout halts
        outcome = Outcome(TargetStatus.FAILED, "a migration failed",
                          error=f"{type(exc).__name__}: {exc}".strip())
    finally:
        connections[name].close()
    record(rollout_id, name, attempt, outcome, worker)
    rollouts.advance(rollout_id, actor=worker)
    return str(outcome.status or "busy")


def record(rollout_id: int, name: str, attempt: int, outcome: Outcome, worker: str) -> None:
    """Write what the step saw, unless an operator acted on the target meanwhile."""
    now = timezone.now()
    with transaction.atomic(using=CONTROL):
        # The rollout's row first, then the target's: the order every tick takes them in.
        rollout = rollouts.rollouts().select_for_update().get(pk=rollout_id)
        target = rollout.targets.select_for_update().get(target=name)
        if target.attempt != attempt or target.status not in TargetStatus.active():
            return
        before = target.status
        target.steps += 1
        target.detail = outcome.detail
        target.applied = [*target.applied, *outcome.applied]
        if outcome.jobs or outcome.status != TargetStatus.WAITING:
            target.jobs = outcome.jobs or target.jobs
        poll = float(conf.get("FLEET_POLL_SECONDS"))
        # A held target's server is asked less often: each look costs a worker CONNECT_SECONDS.
        target.next_step_at = now + timedelta(
            seconds=poll * (2 if outcome.status == TargetStatus.HELD else 1))
        if outcome.status is not None:
            target.status = outcome.status
        if outcome.status in (TargetStatus.PASSED, TargetStatus.FAILED):
            target.finished_at = now
            target.next_step_at = None
        target.error = outcome.error
        target.save()
        if outcome.applied:
            rollouts.event(rollout, "applied", ", ".join(outcome.applied), target=name, actor=worker)
        if target.status != before or outcome.status == TargetStatus.FAILED:
            rollouts.event(rollout, str(target.status), outcome.error or outcome.detail,
                           target=name, actor=worker)
        if target.status == TargetStatus.FAILED and rollout.status == RolloutStatus.RUNNING:
            rollouts.halt(rollout, target, worker)
