"""The deploy step's `migrate`: apply what the gates allow, enqueue what they wait for, go on.

In dependency order, every unapplied migration whose prerequisites are met is applied: a
migration with `RequireJob` only once its job is finished (`gates.pass_gate`: a small remainder
is finished inline, exactly as `migrate` would), and every migration that depends on a held one
is held with it. Independent migrations, in other apps, still go ahead. The jobs the held gates
need are enqueued. A database session lost mid-deploy (a restart, a failover) is reconnected
and the deploy goes on: every step is re-runnable, so that is what a rerun would do.

A deploy runs one stage (`operations.stage`): `pre` applies the expand migrations and leaves
the contract ones for later, `post` applies the contract ones and refuses while any pre-deploy
migration is still unapplied (the new release must not be rolled out before that either), `all`
applies everything in order (a fresh or development database, where no previous release runs).

A gate is decided once per migration: here, before the migration starts (a closed gate keeps
it back whole), and its `RequireJob` is told so (`jobs.gates_passed`) instead of deciding again;
plain `migrate` has no such caller, and there `RequireJob` decides it.

A deploy works on one target (`using`, a database alias): its migrations, its jobs' runs and
gates, its deploy lock, its reconnects; nothing of another database is read or written.

The deploy lock keeps a second deploy of the same database out; the command around this prints,
nothing here does: what happens is reported as events (`events`) to a `Reporter`.
"""

from __future__ import annotations

import time

from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration

from .. import pg
from ..exceptions import JobFailed, JobNotFinished, MigrationsWorkerError, Pending, StageNotReady
from ..models import JobRun, RunStatus
from ..operations import Stage
from ..operations.jobs import gates_passed
from ..operations.stage import stage_of
from ..runs import control, dispatch, drive, gates
from ..runs.progress import one_line, progress_of
from ..targets import database_flag
from . import lock as deploy_lock
from .events import Applied, Applying, Note, Pass, Reporter, StoppedAtGates, Waiting
from .pending import gates_of, label, loader_executor, unapplied

ACTOR = "migrate_online"
# A lost database session is reconnected this many times per deploy, waiting this long each time.
MAX_RECONNECTS = 10
RECONNECT_WAIT_SECONDS = 120.0
ENGINE_APP = JobRun._meta.app_label


def engine_first(plan: list[Migration]) -> list[Migration]:
    """The plan with the engine's own migrations ahead of the rest: a migration that enqueues
    or finishes a job needs the engine's tables as this code reads them, and the engine's
    migrations depend on nothing but each other, so moving them first breaks no dependency."""
    ours = [m for m in plan if m.app_label == ENGINE_APP]
    if any(app != ENGINE_APP for m in ours for app, _name in m.dependencies):
        return plan  # not the case today; then the graph's order stands
    return ours + [m for m in plan if m.app_label != ENGINE_APP]


def apply_engine_migrations(connection, progress_callback=None) -> list[str]:
    """Bring the engine's own tables up to date before anything else (`migrate` does this
    first, as `migrate_online` orders its plan); returns what it applied."""
    executor = MigrationExecutor(connection, progress_callback)
    leaves = [node for node in executor.loader.graph.leaf_nodes() if node[0] == ENGINE_APP]
    plan = executor.migration_plan(leaves)
    if not plan or any(backwards for _m, backwards in plan):
        return []
    if any(app != ENGINE_APP for m, _b in plan for app, _name in m.dependencies):
        return []
    executor.migrate(leaves, plan=plan)
    return [label(m) for m, _b in plan]


class OnlineExecutor:
    """The apply loop of a deploy; what happens is reported as events (`events`) to `report`."""

    def __init__(self, report: Reporter, verbosity: int = 1, using: str = DEFAULT_DB_ALIAS):
        self.report = report
        self.verbosity = verbosity
        self.using = using

    # -- applying ---------------------------------------------------------------------------

    def apply_pass(self, stage: Stage | None = None) -> Pass:
        """Apply every unapplied migration of `stage` (None: of every stage) whose gates are
        open and whose parents are applied."""
        executor = loader_executor(self.using)
        plan = engine_first(unapplied(executor))
        result = Pass()
        if stage == Stage.POST:
            self.require_pre_stage_done(plan)
        if not plan:
            return result
        graph = executor.loader.graph
        pre_state = executor._create_project_state(with_applied_migrations=True)
        emit_pre_migrate_signal(self.verbosity - 1, False, self.using,
                                apps=pre_state.apps, plan=[(m, False) for m in plan])
        state = pre_state.clone()
        targets = graph.leaf_nodes()
        for migration in plan:
            if stage is not None and stage_of(migration) != stage:
                result.later[label(migration)] = stage_of(migration)
                continue
            parents = (".".join(p.key) for p in graph.node_map[migration.app_label,
                                                             migration.name].parents)
            held_parent = next((p for p in parents
                                if p in result.gated or p in result.held or p in result.later), None)
            if held_parent is not None:
                result.held[label(migration)] = held_parent
                continue
            job = self.closed_gate(migration, result)
            if job is not None:
                result.gated[label(migration)] = job
                continue
            self.report(Applying(label(migration)))
            with gates_passed(gate.job_name for gate in gates_of(migration)):
                state = executor.migrate(targets, plan=[(migration, False)], state=state)
            self.report(Applied(label(migration)))
            result.applied.append(label(migration))
        if result.applied:  # content types, permissions: what `migrate` does after applying
            state.clear_delayed_apps_cache()
            emit_post_migrate_signal(self.verbosity - 1, False, self.using, apps=state.apps,
                                     plan=[(m, False) for m in plan if label(m) in result.applied])
        return result

    def require_pre_stage_done(self, plan: list[Migration]) -> None:
        """The contract stage needs every expand migration applied: the new release runs on
        them, and a contract step may remove what an unapplied one still needs."""
        pending = [m for m in plan if stage_of(m) == Stage.PRE]
        if not pending:
            return
        why = []
        for migration in pending[:5]:
            waits = [f"waits for job {g.job_name}: "
                     f"{gates.decide(g.job_name, g.limit(), using=self.using).describe()}"
                     for g in gates_of(migration)]
            why.append(f"{label(migration)}" + (f" ({'; '.join(waits)})" if waits else ""))
        more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        raise StageNotReady(
            f"the post-deploy stage cannot start: {len(pending)} pre-deploy migration(s) are not "
            f"applied yet: {', '.join(why)}{more}. Run `python manage.py migrate_online --stage pre"
            f"{database_flag(self.using)} "
            "--wait` first (and roll the new release out only after it succeeds), then the post "
            "stage once the rollout is over.")

    def closed_gate(self, migration: Migration, result: Pass) -> str | None:
        """The job that keeps `migration` back, or None once every gate of it is open (the one
        decision on each of its gates in this deploy pass)."""
        for gate in gates_of(migration):
            if gate.job_name in result.closed:
                return gate.job_name
            try:
                gate.pass_gate(needed_by=migration.app_label, using=self.using)
            except JobNotFinished as exc:
                result.closed[gate.job_name] = exc
                return gate.job_name
        return None

    def enqueue_gated(self, result: Pass) -> None:
        """A closed gate asks for its job: start it if nothing runs it, send it if pending."""
        for job in sorted(result.closed):
            enqueued = dispatch.enqueue(job, actor=ACTOR, message="enqueued by migrate_online",
                                        using=self.using)
            if enqueued.message:
                self.report(Note(enqueued.message, warning=enqueued.warning))
            run = control.latest_run(job, using=self.using)
            result.progress[job] = one_line(progress_of(run)) if run else f"{job}: no run yet"

    # -- the deploy -------------------------------------------------------------------------

    def deploy(self, *, stage: Stage | None, wait: bool, timeout: float | None, poll: float,
               lock_wait: float, require_complete: bool = False) -> None:
        """Apply what the stage allows; with `wait`, wait at each gate and go on past it; with
        `require_complete`, a stop at a gate is Pending (exit 8), not a clean end: a pipeline
        must not roll out (or go on) while the stage still has work."""
        deadline = None if timeout is None else time.monotonic() + timeout
        deploy_lock.acquire(lock_wait, on_wait=self.note, using=self.using)
        try:
            reconnects = 0
            while True:
                try:
                    if self.deploy_pass(stage, wait, deadline, poll, require_complete):
                        return
                except DatabaseError as exc:
                    if not pg.connection_lost(exc, using=self.using) or reconnects >= MAX_RECONNECTS:
                        raise
                    reconnects += 1
                    self.reconnect(exc, reconnects, lock_wait)
        finally:
            deploy_lock.release(self.using)

    def deploy_pass(self, stage: Stage | None, wait: bool, deadline: float | None,
                    poll: float, require_complete: bool = False) -> bool:
        """One pass; True when done (or stopped cleanly at a gate), False to pass again."""
        result = self.apply_pass(stage)
        if not result.gated:
            self.note(f"migrate_online: done, {len(result.applied)} migration(s) applied in the "
                      f"last pass; {self.pending_after(stage, result)}")
            return True
        self.enqueue_gated(result)
        self.report(StoppedAtGates(result))
        failed = [run for run in (failed_run(job, self.using) for job in result.jobs)
                  if run is not None]
        if failed:
            raise JobFailed("a gate's job has failed: " + "; ".join(one_line(progress_of(r)) for r in failed)
                            + ". Fix the cause, then `python manage.py backfill retry JOB"
                            f"{database_flag(self.using)}` and deploy again.")
        if not wait and require_complete:
            stage_flag = f" --stage {stage or 'all'}{database_flag(self.using)}"
            what = f"the {stage}-deploy stage" if stage else "the deploy (every stage)"
            raise Pending(f"{what} is not complete: "
                          f"{len(result.gated) + len(result.held)} migration(s) wait for data jobs "
                          f"({', '.join(result.jobs)}), now enqueued. Wait for them: `python manage.py "
                          f"migrate_online{stage_flag} --wait`, then go on.")
        if not wait:
            self.note("migrate_online: stopped cleanly at the gate(s) above; run it again "
                      "(or with --wait) once the jobs are finished")
            return True
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        drive.wait_for(result.jobs, until_any=True, timeout=remaining, poll=poll,
                       on_poll=lambda runs: self.report(Waiting(runs)), using=self.using)
        return False

    def note(self, text: str, warning: bool = False) -> None:
        self.report(Note(text, warning))

    @staticmethod
    def pending_after(stage: Stage | None, result: Pass) -> str:
        if stage == Stage.PRE and result.later:
            return (f"pre-deploy stage done; {len(result.later)} post-deploy migration(s) wait for "
                    "`migrate_online --stage post` once the new release runs everywhere")
        return "nothing pending" if stage is None else f"{stage}-deploy stage done; nothing pending"

    def reconnect(self, exc: DatabaseError, attempt: int, lock_wait: float) -> None:
        connections[self.using].close()
        self.note(f"lost the database connection ({type(exc).__name__}: {str(exc).strip()}); "
                  f"reconnecting ({attempt}/{MAX_RECONNECTS})", warning=True)
        error = pg.wait_for_database(RECONNECT_WAIT_SECONDS, database=self.using)
        if error:
            raise MigrationsWorkerError(f"database not reachable again after "
                                        f"{RECONNECT_WAIT_SECONDS:.0f}s: {error}") from exc
        deploy_lock.acquire(lock_wait, on_wait=self.note, using=self.using)


def failed_run(job: str, using: str = DEFAULT_DB_ALIAS) -> JobRun | None:
    run = control.active_run(job, using=using)
    return run if run is not None and run.status == RunStatus.FAILED else None
