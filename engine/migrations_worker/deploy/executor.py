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

The deploy lock keeps a second deploy out; the command around this prints, nothing here does:
what happens is told to a `Reporter`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration

from .. import pg
from ..exceptions import JobFailed, JobNotFinished, MigrationsWorkerError, StageNotReady
from ..models import JobRun, RunStatus
from ..operations import EnqueueJob, RequireJob, Stage
from ..operations.stage import stage_of
from ..operations.walk import operations_of
from ..runs import control, dispatch, drive, gates
from ..runs.progress import one_line, progress_of
from . import lock as deploy_lock

ACTOR = "migrate_online"
# A lost database session is reconnected this many times per deploy, waiting this long each time.
MAX_RECONNECTS = 10
RECONNECT_WAIT_SECONDS = 120.0


def label(migration: Migration) -> str:
    return f"{migration.app_label}.{migration.name}"


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


def gates_of(migration: Migration) -> list[RequireJob]:
    return operations_of(migration.operations, RequireJob)


def enqueues_of(migration: Migration) -> list[str]:
    return [op.job_name for op in operations_of(migration.operations, EnqueueJob)]


@dataclass
class Pass:
    """One pass over the plan: what was applied and what is held behind which gate."""

    applied: list[str] = field(default_factory=list)
    gated: dict[str, str] = field(default_factory=dict)  # migration -> job it waits for
    held: dict[str, str] = field(default_factory=dict)  # migration -> held migration it needs
    closed: dict[str, JobNotFinished] = field(default_factory=dict)  # job -> why
    progress: dict[str, str] = field(default_factory=dict)  # job -> its run, once enqueued
    later: dict[str, Stage] = field(default_factory=dict)  # migration -> the stage it waits for

    @property
    def jobs(self) -> list[str]:
        return sorted(set(self.gated.values()))


class Reporter(Protocol):
    """What the deploy tells whoever runs it."""

    def migration(self, action: str, migration: Migration | None = None, fake: bool = False) -> None:
        """Django's migration progress callback ("apply_start", "apply_success", ...)."""

    def note(self, text: str, warning: bool = False) -> None: ...

    def stopped_at_gates(self, result: Pass) -> None: ...

    def waiting(self, runs: dict[str, JobRun | None]) -> None: ...


class OnlineExecutor:
    def __init__(self, reporter: Reporter, verbosity: int = 1):
        self.reporter = reporter
        self.verbosity = verbosity

    # -- reading the plan -------------------------------------------------------------------

    def loader_executor(self) -> MigrationExecutor:
        executor = MigrationExecutor(connection, self.reporter.migration)
        executor.loader.check_consistent_history(connection)
        conflicts = executor.loader.detect_conflicts()
        if conflicts:
            names = "; ".join(f"{app}: {', '.join(sorted(n))}" for app, n in conflicts.items())
            raise MigrationsWorkerError(f"conflicting migrations ({names}): run makemigrations --merge")
        return executor

    def unapplied(self, executor: MigrationExecutor | None = None) -> list[Migration]:
        executor = executor or self.loader_executor()
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        return [migration for migration, _backwards in plan]

    def gate_lines(self, migration: Migration, seen: dict[str, gates.Gate]) -> list[str]:
        """Each gate of `migration` as it stands (read only), and the jobs it enqueues."""
        lines = []
        for gate in gates_of(migration):
            if gate.job_name not in seen:
                seen[gate.job_name] = gates.decide(gate.job_name, gate.limit(), ahead=True)
            lines.append(f"gate: {seen[gate.job_name].describe()}")
        return lines + [f"enqueues: {job}" for job in enqueues_of(migration)]

    def pending_runs(self, executor: MigrationExecutor, stage: Stage | None = None) -> list[JobRun]:
        """Runs still under way of the jobs the migrations enqueue or require (of one stage:
        the jobs its migrations require)."""
        if not gates.engine_tables_exist():
            return []
        jobs: set[str] = set()
        for migration in executor.loader.disk_migrations.values():
            if stage is not None:
                if stage_of(migration) == stage:
                    jobs |= {gate.job_name for gate in gates_of(migration)}
                continue
            jobs |= {gate.job_name for gate in gates_of(migration)} | set(enqueues_of(migration))
        runs = [control.active_run(job) for job in sorted(jobs)]
        return [run for run in runs if run is not None]

    # -- applying ---------------------------------------------------------------------------

    def apply_pass(self, stage: Stage | None = None) -> Pass:
        """Apply every unapplied migration of `stage` (None: of every stage) whose gates are
        open and whose parents are applied."""
        executor = self.loader_executor()
        plan = engine_first(self.unapplied(executor))
        result = Pass()
        if stage == Stage.POST:
            self.require_pre_stage_done(plan)
        if not plan:
            return result
        graph = executor.loader.graph
        pre_state = executor._create_project_state(with_applied_migrations=True)
        emit_pre_migrate_signal(self.verbosity - 1, False, DEFAULT_DB_ALIAS,
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
            state = executor.migrate(targets, plan=[(migration, False)], state=state)
            result.applied.append(label(migration))
        if result.applied:  # content types, permissions: what `migrate` does after applying
            state.clear_delayed_apps_cache()
            emit_post_migrate_signal(self.verbosity - 1, False, DEFAULT_DB_ALIAS, apps=state.apps,
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
            waits = [f"waits for job {g.job_name}: {gates.decide(g.job_name, g.limit()).describe()}"
                     for g in gates_of(migration)]
            why.append(f"{label(migration)}" + (f" ({'; '.join(waits)})" if waits else ""))
        more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        raise StageNotReady(
            f"the post-deploy stage cannot start: {len(pending)} pre-deploy migration(s) are not "
            f"applied yet: {', '.join(why)}{more}. Run `python manage.py migrate_online --stage pre "
            "--wait` first (and roll the new release out only after it succeeds), then the post "
            "stage once the rollout is over.")

    @staticmethod
    def closed_gate(migration: Migration, result: Pass) -> str | None:
        """The job that keeps `migration` back, or None once every gate of it is open."""
        for gate in gates_of(migration):
            if gate.job_name in result.closed:
                return gate.job_name
            try:
                gates.pass_gate(gate.job_name, gate.limit(), needed_by=migration.app_label)
            except JobNotFinished as exc:
                result.closed[gate.job_name] = exc
                return gate.job_name
        return None

    def enqueue_gated(self, result: Pass) -> None:
        """A closed gate asks for its job: start it if nothing runs it, send it if pending."""
        for job in sorted(result.closed):
            enqueued = dispatch.enqueue(job, actor=ACTOR, message="enqueued by migrate_online")
            if enqueued.message:
                self.reporter.note(enqueued.message, warning=enqueued.warning)
            run = control.latest_run(job)
            result.progress[job] = one_line(progress_of(run)) if run else f"{job}: no run yet"

    # -- the deploy -------------------------------------------------------------------------

    def deploy(self, *, stage: Stage | None, wait: bool, timeout: float | None, poll: float,
               lock_wait: float) -> None:
        """Apply what the stage allows; with `wait`, wait at each gate and go on past it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        deploy_lock.acquire(lock_wait, on_wait=self.reporter.note)
        try:
            reconnects = 0
            while True:
                try:
                    if self.deploy_pass(stage, wait, deadline, poll):
                        return
                except DatabaseError as exc:
                    if not pg.connection_lost(exc) or reconnects >= MAX_RECONNECTS:
                        raise
                    reconnects += 1
                    self.reconnect(exc, reconnects, lock_wait)
        finally:
            deploy_lock.release()

    def deploy_pass(self, stage: Stage | None, wait: bool, deadline: float | None,
                    poll: float) -> bool:
        """One pass; True when done (or stopped cleanly at a gate), False to pass again."""
        result = self.apply_pass(stage)
        if not result.gated:
            self.reporter.note(f"migrate_online: done, {len(result.applied)} migration(s) "
                               f"applied in the last pass; {self.pending_after(stage, result)}")
            return True
        self.enqueue_gated(result)
        self.reporter.stopped_at_gates(result)
        failed = [run for run in map(failed_run, result.jobs) if run is not None]
        if failed:
            raise JobFailed("a gate's job has failed: " + "; ".join(one_line(progress_of(r)) for r in failed)
                            + ". Fix the cause, then `python manage.py backfill retry JOB` and deploy again.")
        if not wait:
            self.reporter.note("migrate_online: stopped cleanly at the gate(s) above; run it again "
                               "(or with --wait) once the jobs are finished")
            return True
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        drive.wait_for(result.jobs, until_any=True, timeout=remaining, poll=poll,
                       on_poll=self.reporter.waiting)
        return False

    @staticmethod
    def pending_after(stage: Stage | None, result: Pass) -> str:
        if stage == Stage.PRE and result.later:
            return (f"pre-deploy stage done; {len(result.later)} post-deploy migration(s) wait for "
                    "`migrate_online --stage post` once the new release runs everywhere")
        return "nothing pending" if stage is None else f"{stage}-deploy stage done; nothing pending"

    def reconnect(self, exc: DatabaseError, attempt: int, lock_wait: float) -> None:
        connection.close()
        self.reporter.note(f"lost the database connection ({type(exc).__name__}: {str(exc).strip()}); "
                           f"reconnecting ({attempt}/{MAX_RECONNECTS})", warning=True)
        error = pg.wait_for_database(RECONNECT_WAIT_SECONDS)
        if error:
            raise MigrationsWorkerError(f"database not reachable again after "
                                        f"{RECONNECT_WAIT_SECONDS:.0f}s: {error}") from exc
        deploy_lock.acquire(lock_wait, on_wait=self.reporter.note)


def failed_run(job: str) -> JobRun | None:
    run = control.active_run(job)
    return run if run is not None and run.status == RunStatus.FAILED else None
