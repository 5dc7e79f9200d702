"""What a deploy would apply, read without running anything: the unapplied migrations in the
order they apply, each one's gates (as they stand) and the jobs it enqueues.

The apply loop (`executor`), the plan (`plan`) and `migrate_online --check` read it here: the
plan never builds an executor or pretends to run one. Everything is read from one target (its
alias, `using`): its migrations table, its jobs' runs.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration

from ..exceptions import MigrationsWorkerError
from ..models import JobRun
from ..operations import EnqueueJob, RequireJob, Stage
from ..operations.stage import stage_of
from ..operations.walk import operations_of
from ..runs import control, gates


def label(migration: Migration) -> str:
    return f"{migration.app_label}.{migration.name}"


def gates_of(migration: Migration) -> list[RequireJob]:
    return operations_of(migration.operations, RequireJob)


def enqueues_of(migration: Migration) -> list[str]:
    return [op.job_name for op in operations_of(migration.operations, EnqueueJob)]


def loader_executor(using: str = DEFAULT_DB_ALIAS) -> MigrationExecutor:
    """Django's executor over the migrations on disk and those applied to the database `using`,
    refusing an inconsistent history or conflicting leaves (as `migrate` does)."""
    connection = connections[using]
    executor = MigrationExecutor(connection)
    executor.loader.check_consistent_history(connection)
    conflicts = executor.loader.detect_conflicts()
    if conflicts:
        names = "; ".join(f"{app}: {', '.join(sorted(n))}" for app, n in conflicts.items())
        raise MigrationsWorkerError(f"conflicting migrations ({names}): run makemigrations --merge")
    return executor


def unapplied(executor: MigrationExecutor) -> list[Migration]:
    """The unapplied migrations, in the order Django's plan applies them."""
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [migration for migration, _backwards in plan]


def gate_lines(migration: Migration, seen: dict[str, gates.Gate],
               using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Each gate of `migration` as it stands on `using` (read only), and the jobs it enqueues;
    `seen` keeps each job's gate as first read, for the migrations after it."""
    lines = []
    for gate in gates_of(migration):
        if gate.job_name not in seen:
            seen[gate.job_name] = gates.decide(gate.job_name, gate.limit(), ahead=True, using=using)
        lines.append(f"gate: {seen[gate.job_name].describe()}")
    return lines + [f"enqueues: {job}" for job in enqueues_of(migration)]


def pending_runs(executor: MigrationExecutor, stage: Stage | None = None) -> list[JobRun]:
    """Runs still under way of the jobs the migrations enqueue or require (of one stage: the
    jobs its migrations require), on the executor's database."""
    using = executor.connection.alias
    if not gates.engine_tables_exist(using=using):
        return []
    jobs: set[str] = set()
    for migration in executor.loader.disk_migrations.values():
        if stage is not None:
            if stage_of(migration) == stage:
                jobs |= {gate.job_name for gate in gates_of(migration)}
            continue
        jobs |= {gate.job_name for gate in gates_of(migration)} | set(enqueues_of(migration))
    runs = [control.active_run(job, using=using) for job in sorted(jobs)]
    return [run for run in runs if run is not None]
