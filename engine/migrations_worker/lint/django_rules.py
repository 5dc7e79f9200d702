"""The Django-level rules: what squawk cannot see in SQL, read from the operations themselves.

Squawk cannot tell a table created a few lines up from a table with a billion rows, nor see that
a field is becoming a primary key. These rules read each operation against the project state just
before it. One rule is one catalogue entry (`catalogue.RULES`) and one check function here,
registered under the rule's id:

- `@operation_rule(id)`: called with each `Step` (an operation, inside wrappers too, and the
  state before it); returns where the rule is broken ("AddField shop_order.total"), or None.
- `@sql_rule(id)`: called with the migration's rendered SQL; yields one detail per breach.
- `@migration_rule(id)`: called with the whole `LintedMigration` (its stage, SQL, new tables,
  parents); yields one detail per breach.

`check()` runs them all, in the order they are registered here, which is the order they are
reported in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import NOT_PROVIDED, Field, UniqueConstraint
from django.db.models.options import normalize_together

from ..operations import Stage
from ..operations.stage import declared_stage, stage_of
from ..operations.walk import walk
from ..sqltext import contract_steps, identifiers, strip_literals
from .catalogue import MAX_IDENTIFIER_BYTES, MIN_REASON_LENGTH, RULES
from .findings import LintedMigration
from .operation_kinds import LOCK_SAFE_OPERATIONS, is_concurrent
from .render import table_name


@dataclass(frozen=True)
class Step:
    """One operation of the linted migration, with the project state just before it."""

    migration: Migration
    operation: Operation
    state: ProjectState  # just before this operation (walk() moves it on after the checks)
    start: ProjectState  # just before the migration

    @property
    def kind(self) -> str:
        return type(self.operation).__name__

    @property
    def model_key(self) -> tuple[str, str | None]:
        if isinstance(self.operation, ops.AlterUniqueTogether | ops.AlterIndexTogether):
            return self.migration.app_label, self.operation.name_lower
        return self.migration.app_label, getattr(self.operation, "model_name_lower", None)

    @property
    def on_existing_table(self) -> bool:
        """Whether the operation's table was there before the migration (so may be big and busy)."""
        return self.model_key in self.start.models and self.model_key in self.state.models

    @property
    def model(self) -> ModelState:
        return self.state.models[self.model_key]

    @property
    def table(self) -> str:
        return table_name(*self.model_key, self.model.options)


OperationCheck = Callable[[Step], str | None]
SqlCheck = Callable[[str], Iterator[str]]
MigrationCheck = Callable[[LintedMigration], Iterator[str]]
OPERATION_CHECKS: dict[str, OperationCheck] = {}
SQL_CHECKS: dict[str, SqlCheck] = {}
MIGRATION_CHECKS: dict[str, MigrationCheck] = {}


def operation_rule(rule: str) -> Callable[[OperationCheck], OperationCheck]:
    """Register the decorated function as the check of catalogue rule `rule`, per operation."""
    return _register(OPERATION_CHECKS, rule)


def sql_rule(rule: str) -> Callable[[SqlCheck], SqlCheck]:
    """Register the decorated function as the check of catalogue rule `rule`, on rendered SQL."""
    return _register(SQL_CHECKS, rule)


def migration_rule(rule: str) -> Callable[[MigrationCheck], MigrationCheck]:
    """Register the decorated function as the check of catalogue rule `rule`, per migration."""
    return _register(MIGRATION_CHECKS, rule)


def _register(registry: dict, rule: str) -> Callable:
    if rule not in RULES:
        raise KeyError(f"rule {rule!r} has no catalogue entry (summary and advice) in RULES")
    if rule in OPERATION_CHECKS or rule in SQL_CHECKS or rule in MIGRATION_CHECKS:
        raise ValueError(f"rule {rule!r} has a check already: one rule, one check function")

    def register(function: Callable) -> Callable:
        registry[rule] = function
        return function

    return register


def check(item: LintedMigration) -> None:
    """Every Django-level rule over one migration: per operation, then over its SQL."""
    migration = item.migration
    for operation, state in walk(migration.operations, item.before, migration.app_label):
        step = Step(migration, operation, state, item.before)
        for rule, check_step in OPERATION_CHECKS.items():
            detail = check_step(step)
            if detail is not None:
                item.add(rule, detail)
    for rule, check_sql in SQL_CHECKS.items():
        for detail in check_sql(item.sql):
            item.add(rule, detail)
    for rule, check_migration in MIGRATION_CHECKS.items():
        for detail in check_migration(item):
            item.add(rule, detail)


# --- rules on operations -------------------------------------------------------------------------


@operation_rule("raw-sql")
def raw_sql(step: Step) -> str | None:
    return "RunSQL" if isinstance(step.operation, ops.RunSQL) else None


@operation_rule("concurrent-index-in-atomic-migration")
def concurrent_index_in_atomic_migration(step: Step) -> str | None:
    if step.migration.atomic and is_concurrent(step.operation):
        return step.operation.describe()
    return None


@operation_rule("lock-safe-operation-in-atomic-migration")
def lock_safe_operation_in_atomic_migration(step: Step) -> str | None:
    operation = step.operation
    if (step.migration.atomic and isinstance(operation, LOCK_SAFE_OPERATIONS)
            and not is_concurrent(operation)):  # that one says it already, more precisely
        return step.kind
    return None


@operation_rule("alter-primary-key")
def alter_primary_key(step: Step) -> str | None:
    operation = step.operation
    if not (isinstance(operation, ops.AddField | ops.AlterField) and step.on_existing_table):
        return None
    if _changes_primary_key(step.model.fields.get(operation.name), operation.field):
        return f"{step.kind} {step.table}.{operation.name}"
    return None


@operation_rule("not-null-without-db-default")
def not_null_without_db_default(step: Step) -> str | None:
    operation = step.operation
    if not (isinstance(operation, ops.AddField) and step.on_existing_table):
        return None
    new = operation.field
    if new.null or new.many_to_many or new.db_default is not NOT_PROVIDED or new.primary_key:
        return None
    return f"AddField {step.table}.{operation.name}"


@operation_rule("index-on-existing-table")
def index_on_existing_table(step: Step) -> str | None:
    operation = step.operation
    if not step.on_existing_table:
        return None
    if isinstance(operation, ops.AddField | ops.AlterField):
        if _adds_index(step.model.fields.get(operation.name), operation.field):
            return f"{step.kind} {step.table}.{operation.name}"
    elif isinstance(operation, ops.AddIndex) and not is_concurrent(operation):
        return f"AddIndex {operation.index.name} on {step.table}"
    elif isinstance(operation, ops.AddConstraint) and isinstance(
        operation.constraint, UniqueConstraint
    ):
        return f"AddConstraint {operation.constraint.name} (unique) on {step.table}"
    elif isinstance(operation, ops.AlterUniqueTogether | ops.AlterIndexTogether):
        old_sets = normalize_together(step.model.options.get(operation.option_name) or set())
        new_sets = normalize_together(operation.option_value or set())
        if set(new_sets) - set(old_sets):
            return f"{step.kind} on {step.table}"
    return None


# Field options that change nothing in the database: a key keeping its shape apart from these
# is not being changed.
COSMETIC_FIELD_OPTIONS = {
    "verbose_name", "help_text", "validators", "editable", "blank", "choices", "serialize",
    "auto_created", "error_messages", "default", "db_comment",
}


def _changes_primary_key(old: Field | None, new: Field) -> bool:
    if not new.primary_key and not (old is not None and old.primary_key):
        return False
    if old is None or old.primary_key != new.primary_key:
        return True
    return _shape(old) != _shape(new)  # still the key: does its type or column change?


def _shape(f: Field) -> tuple:
    _name, path, args, kwargs = f.deconstruct()
    return path, args, {k: v for k, v in kwargs.items() if k not in COSMETIC_FIELD_OPTIONS}


def _adds_index(old: Field | None, new: Field) -> bool:
    def indexed(f: Field | None) -> bool:
        if f is None or f.primary_key:
            return False
        return bool(f.unique or f.db_index)  # a ForeignKey has db_index=True by default

    return indexed(new) and not indexed(old)


# --- rules on the rendered SQL -------------------------------------------------------------------

_SQUAWK_IGNORE = re.compile(r"--\s*squawk-ignore(?:-file)?\b(?P<rest>[^\n]*)")


@sql_rule("identifier-too-long")
def identifier_too_long(sql: str) -> Iterator[str]:
    seen = set()
    for name in identifiers(strip_literals(sql)):
        size = len(name.encode())
        if size > MAX_IDENTIFIER_BYTES and name not in seen:
            seen.add(name)
            yield f"{name!r} is {size} bytes"


@sql_rule("squawk-ignore-without-reason")
def squawk_ignore_without_reason(sql: str) -> Iterator[str]:
    for match in _SQUAWK_IGNORE.finditer(sql):
        _rules, sep, reason = match["rest"].partition("--")
        if not sep or len(reason.strip()) < MIN_REASON_LENGTH:
            yield match[0].strip()


# --- rules on the whole migration: its deploy stage ---------------------------------------------


@migration_rule("stage-not-declared")
def stage_not_declared(item: LintedMigration) -> Iterator[str]:
    if declared_stage(item.migration) is None:
        yield "no `stage`"


@migration_rule("pre-deploy-depends-on-post-deploy")
def pre_deploy_depends_on_post_deploy(item: LintedMigration) -> Iterator[str]:
    if stage_of(item.migration) != Stage.PRE:
        return
    for parent in item.parents:
        if stage_of(parent) == Stage.POST:
            yield f"depends on {parent.app_label}.{parent.name}"


@migration_rule("contract-operation-in-pre-deploy")
def contract_operation_in_pre_deploy(item: LintedMigration) -> Iterator[str]:
    # An initial migration builds its app's schema on an empty database (on a live one it is
    # faked): nothing is running against it yet.
    if stage_of(item.migration) != Stage.PRE or item.migration.initial:
        return
    yield from contract_steps(item.sql, item.new_tables)
