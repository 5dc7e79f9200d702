"""Each migration as the rules read it: its SQL exactly as `sqlmigrate` prints it, the project
state just before it, and the tables it may treat as new.

Rendering asks the database connection to quote values, and the migration loader reads which
migrations are applied, so this layer (only this one) needs a reachable database.
"""

from __future__ import annotations

from django.db import connections
from django.db.backends.utils import truncate_name
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from ..operations.walk import walk
from .catalogue import MAX_IDENTIFIER_BYTES
from .excuses import written_exceptions
from .findings import LintedMigration


def render(app_labels: set[str], database: str) -> list[LintedMigration]:
    """Each migration's SQL as `sqlmigrate` prints it, in dependency order, with the project
    state just before it (the state walks through every app, linted or not)."""
    connection = connections[database]
    executor = MigrationExecutor(connection)
    unknown = app_labels - {app for app, _ in executor.loader.disk_migrations}
    if unknown:
        raise LookupError(f"no migrations found for app(s): {', '.join(sorted(unknown))}")
    graph = executor.loader.graph
    plan = executor.migration_plan(graph.leaf_nodes(), clean_start=True)
    state = ProjectState(real_apps=executor.loader.unmigrated_apps)
    linted = []
    bootstrap: dict[tuple[str, str], set[str]] = {}  # see bootstrap_tables()
    for migration, _backwards in plan:
        key = (migration.app_label, migration.name)
        bootstrap[key] = bootstrap_tables(migration, state, graph, bootstrap)
        if migration.app_label not in app_labels:
            state = migration.mutate_state(state, preserve=False)
            continue
        before = state.clone()
        item = LintedMigration(migration, before, written_exceptions(migration),
                               parents=[graph.nodes[p.key] for p in graph.node_map[key].parents])
        try:
            statements, state = collect_sql(migration, state, connection)
        except Exception as exc:  # the finding is that nothing can check it
            item.add("sql-not-renderable", f"{type(exc).__name__}: {exc}")
            state = migration.mutate_state(before, preserve=True)
            statements = []
        item.sql = "\n".join(statements) + "\n"
        item.new_tables = bootstrap[key] if migration.initial else created_tables(migration, before)
        linted.append(item)
    return linted


def collect_sql(migration: Migration, state: ProjectState, connection) -> tuple[list[str], ProjectState]:
    """The migration's statements as `sqlmigrate` prints them (an atomic one between BEGIN and
    COMMIT), nothing run, and the project state after it. `state`: the state just before it."""
    with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
        state = migration.apply(state, editor, collect_sql=True)
    statements = editor.collected_sql
    if migration.atomic and statements:
        statements = ["BEGIN;", *statements, "COMMIT;"]
    return statements, state


def bootstrap_tables(migration: Migration, before: ProjectState, graph: MigrationGraph,
                     known: dict[tuple[str, str], set[str]]) -> set[str]:
    """The tables an initial migration may treat as new: its own, and those of the initial
    migrations it depends on through initial migrations only.

    Such a chain builds an app's schema on an empty database (on an existing one it is faked,
    `migrate --fake-initial`), so nothing else can be using those tables yet. A chain through a
    later migration (a new app referencing a live table) does not count.
    """
    if not migration.initial:
        return set()
    tables = created_tables(migration, before)
    for parent in graph.node_map[(migration.app_label, migration.name)].parents:
        tables |= known.get(parent.key, set())
    return tables


def created_tables(migration: Migration, before: ProjectState) -> set[str]:
    """The tables the migration creates: empty, and unknown to any running code."""
    return {
        table_name(migration.app_label, operation.name_lower, operation.options)
        for operation, _state in walk(migration.operations, before, migration.app_label)
        if isinstance(operation, ops.CreateModel)
    }


def table_name(app_label: str, model_name: str, options: dict) -> str:
    """A model's table, as Django names it when `db_table` does not."""
    return options.get("db_table") or truncate_name(f"{app_label}_{model_name}", MAX_IDENTIFIER_BYTES)


