"""The migration linter: every migration's SQL through squawk, plus checks squawk cannot make.

Squawk reads SQL, so it sees what `sqlmigrate` shows but not what the migration *means*: it cannot
tell a table created a few lines up from a table with a billion rows, nor see that a field is
becoming a primary key. The Django-level rules here read the operations against the project
state just before them. Both kinds of finding name the rule, say what goes wrong, and say what to
write instead.

Rules are data (`RULES`, `SQUAWK_HINTS`, `SAFE_ON_NEW_TABLES`), in the spirit of
django-pg-zero-downtime-migrations: a new rule is a new entry and a small check, never a new
branch in the reporting.

Exceptions live next to the migration they excuse, with their reason, as a module-level
`LINT_EXCEPTIONS = {"rule-id": "why this is safe here"}` in the migration file (Django-level and
squawk rule ids alike). An exception without a reason, for an unknown rule, or that excuses
nothing is itself a violation, so exceptions cannot outlive their cause. Inside SafeSQL a squawk
`-- squawk-ignore rule-id -- reason` comment is honoured too, but only with its `-- reason`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.db import connections
from django.db.backends.utils import truncate_name
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState
from django.db.models import NOT_PROVIDED, Field, UniqueConstraint
from django.db.models.options import normalize_together

from .operations import CreateIndexConcurrently, RequireJob, Safely, SafeSQL

PROJECT_APPS = ("assets", "portfolios", "investments", "migrations_worker")
SQUAWK_CONFIG = Path(__file__).resolve().parents[1] / ".squawk.toml"
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated
MIN_REASON_LENGTH = 10


@dataclass(frozen=True)
class Rule:
    summary: str
    instead: str


RULES: dict[str, Rule] = {
    "alter-primary-key": Rule(
        "changes a primary key with Django's AlterField/AddField, which rewrites the key and "
        "every referencing column under ACCESS EXCLUSIVE locks",
        "build a unique index with CreateIndexConcurrently, then swap it in with SafeSQL "
        "(ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY USING INDEX, referencing foreign keys "
        "re-created NOT VALID and validated in a later step), inside SeparateDatabaseAndState "
        "so the model state follows",
    ),
    "not-null-without-db-default": Rule(
        "adds a NOT NULL column without db_default: code that is still running inserts rows "
        "without it and fails, and Django's one-off default is dropped right after",
        "give the field a constant db_default (a catalog-only change), or add it nullable, "
        "backfill it with a data job, then add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it "
        "and SET NOT NULL in separate SafeSQL steps",
    ),
    "concurrent-index-in-atomic-migration": Rule(
        "builds or drops an index CONCURRENTLY in an atomic migration: PostgreSQL refuses "
        "CONCURRENTLY inside a transaction block",
        "set `atomic = False` on the migration and keep one index per migration",
    ),
    "lock-safe-operation-in-atomic-migration": Rule(
        "uses a lock-safe step (Safely, SafeSQL, RequireJob) in an atomic migration: each step "
        "must commit on its own so a retry never waits while holding earlier locks",
        "set `atomic = False` on the migration",
    ),
    "raw-sql": Rule(
        "runs raw SQL with RunSQL, which sets no lock_timeout and never retries",
        "use migrations_worker.ddl.SafeSQL: each step runs under lock_timeout and "
        "statement_timeout and is retried when the lock is not granted",
    ),
    "index-on-existing-table": Rule(
        "builds an index on an existing table without CONCURRENTLY: it holds a SHARE lock that "
        "blocks every write to the table for the whole build",
        "use CreateIndexConcurrently (or django.contrib.postgres AddIndexConcurrently) in its "
        "own `atomic = False` migration; for a unique constraint build the unique index "
        "concurrently, then ADD CONSTRAINT ... UNIQUE USING INDEX with SafeSQL; for a "
        "ForeignKey pass db_index=False and create its index concurrently",
    ),
    "identifier-too-long": Rule(
        f"uses an identifier longer than {MAX_IDENTIFIER_BYTES} bytes, which PostgreSQL "
        "silently truncates: lookups by the full name (re-runs, reversals) then miss it",
        f"choose a name of at most {MAX_IDENTIFIER_BYTES} bytes",
    ),
    "sql-not-renderable": Rule(
        "cannot be rendered to SQL (as `sqlmigrate` would), so nothing can check it",
        "make sqlmigrate work for it, e.g. express database-introspecting operations as SafeSQL",
    ),
    "exception-without-reason": Rule(
        "has a LINT_EXCEPTIONS entry without a written reason",
        f"write why the rule does not apply here (at least {MIN_REASON_LENGTH} characters)",
    ),
    "unknown-rule-in-exception": Rule(
        "has a LINT_EXCEPTIONS entry for a rule that does not exist",
        "use a rule id this linter or squawk reports, or remove the entry",
    ),
    "unused-exception": Rule(
        "has a LINT_EXCEPTIONS entry that excuses nothing",
        "remove it, so it cannot hide a future violation",
    ),
    "squawk-ignore-without-reason": Rule(
        "has a `-- squawk-ignore` comment without a reason",
        "write it as `-- squawk-ignore rule-id -- why this is safe here`",
    ),
    "squawk-failed": Rule(
        "could not be checked: squawk did not run",
        "install the dev dependencies (`pip install -e '.[dev]'`, which brings squawk-cli)",
    ),
}

# What to write instead, in this project's terms, for squawk's findings.
SQUAWK_HINTS: dict[str, str] = {
    "require-lock-timeout": "wrap the operation in migrations_worker.ddl.Safely(...) (Django "
    "operations) or use SafeSQL (raw SQL), in an `atomic = False` migration: every step then "
    "runs under lock_timeout and is retried",
    "require-statement-timeout": "wrap the operation in Safely(...) or SafeSQL: they set "
    "statement_timeout (lifted only for index builds and VALIDATE)",
    "require-concurrent-index-creation": RULES["index-on-existing-table"].instead,
    "require-concurrent-index-deletion": "drop it with SafeSQL([['DROP INDEX CONCURRENTLY IF "
    "EXISTS ...']]) or RemoveIndexConcurrently, in an `atomic = False` migration",
    "disallowed-unique-constraint": "CreateIndexConcurrently(unique=True), then SafeSQL: "
    "ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX",
    "constraint-missing-not-valid": "add the constraint NOT VALID in one SafeSQL step and "
    "VALIDATE CONSTRAINT in a later one (long_running=True)",
    "adding-foreign-key-constraint": "add the foreign key NOT VALID with SafeSQL, then VALIDATE "
    "it in a separate step",
    "adding-not-nullable-field": "CHECK (col IS NOT NULL) NOT VALID, then VALIDATE, then SET NOT "
    "NULL (PostgreSQL 12+ uses the validated check instead of scanning), as SafeSQL steps",
    "adding-required-field": RULES["not-null-without-db-default"].instead,
    "changing-column-type": "add a new column, backfill it with a data job, and switch over with "
    "SeparateDatabaseAndState",
    "ban-drop-default": RULES["not-null-without-db-default"].instead,
    "ban-drop-function": "drop it only once no trigger and no running code calls it, and say so "
    "in the migration's LINT_EXCEPTIONS",
    "ban-drop-column": "remove the field from the model state first (SeparateDatabaseAndState), "
    "deploy, then drop the column in a later migration whose LINT_EXCEPTIONS says why no "
    "running code reads it any more",
}

# Squawk rules that a statement on a table created earlier in the same migration cannot break:
# the table is empty and no running code knows it. "target": only the altered table must be
# new (e.g. a foreign key scans only the new table); "all": every table the statement touches
# must be new (a lock on an existing, referenced table can still queue behind a long
# transaction, so it needs lock_timeout all the same).
SAFE_ON_NEW_TABLES: dict[str, str] = {
    "require-lock-timeout": "all",
    "require-statement-timeout": "all",
    "adding-foreign-key-constraint": "target",
    "adding-required-field": "target",
    "adding-not-nullable-field": "target",
    "adding-field-with-default": "target",
    "adding-serial-primary-key-field": "target",
    "adding-primary-key-constraint": "target",
    "constraint-missing-not-valid": "target",
    "disallowed-unique-constraint": "target",
    "require-concurrent-index-creation": "target",
    "changing-column-type": "target",
    "prefer-robust-stmts": "target",
}

CONCURRENT_INDEX_OPERATIONS: tuple[type, ...] = (CreateIndexConcurrently,)
try:  # django.contrib.postgres needs psycopg, which this project always has
    from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently

    CONCURRENT_INDEX_OPERATIONS += (AddIndexConcurrently, RemoveIndexConcurrently)
except ImportError:  # pragma: no cover
    pass


@dataclass(frozen=True)
class Violation:
    app_label: str
    migration: str
    rule: str
    message: str
    instead: str
    source: str = "django"  # or "squawk"
    sql: str = ""

    @property
    def key(self) -> str:
        return f"{self.app_label}.{self.migration}"

    def format(self) -> str:
        text = f"{self.key}: [{self.rule}] {self.message}"
        if self.sql:
            text += f"\n    sql: {self.sql}"
        if self.instead:
            text += f"\n    instead: {self.instead}"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "key": self.key}


@dataclass
class LintedMigration:
    """One migration as the linter saw it: its SQL, and the facts the rules need."""

    migration: Migration
    before: ProjectState  # the project state just before it
    exceptions: dict[str, object]
    sql: str = ""
    new_tables: set[str] = field(default_factory=set)
    violations: list[Violation] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.migration.app_label}.{self.migration.name}"

    def add(self, rule: str, detail: str = "", *, sql: str = "") -> None:
        spec = RULES[rule]
        message = f"{detail}: {spec.summary}" if detail else spec.summary
        self.violations.append(
            Violation(self.migration.app_label, self.migration.name, rule, message, spec.instead,
                      sql=sql)
        )


# --- the whole run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LintResult:
    migrations: list[str]
    violations: list[Violation]


def lint(app_labels: Iterable[str] = PROJECT_APPS, *, database: str = "default",
         squawk_config: Path = SQUAWK_CONFIG) -> LintResult:
    """Lint every migration of `app_labels`; the violations left after the written exceptions."""
    linted = render(set(app_labels), database)
    for item in linted:
        check_operations(item)
        check_identifiers(item)
        check_squawk_ignores(item)
    run_squawk(linted, squawk_config)
    violations: list[Violation] = []
    for item in linted:
        violations += apply_exceptions(item)
    return LintResult([item.key for item in linted], violations)


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
        module = sys.modules[type(migration).__module__]
        item = LintedMigration(migration, before, dict(getattr(module, "LINT_EXCEPTIONS", {})))
        try:
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                state = migration.apply(state, editor, collect_sql=True)
            statements = editor.collected_sql
        except Exception as exc:  # the finding is that nothing can check it
            item.add("sql-not-renderable", f"{type(exc).__name__}: {exc}")
            state = migration.mutate_state(before, preserve=True)
            statements = []
        if migration.atomic and statements:
            statements = ["BEGIN;", *statements, "COMMIT;"]
        item.sql = "\n".join(statements) + "\n"
        item.new_tables = bootstrap[key] if migration.initial else created_tables(migration, before)
        linted.append(item)
    return linted


def bootstrap_tables(migration: Migration, before: ProjectState, graph,
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
    tables = set()
    for operation, _state in walk(migration.operations, before, migration.app_label):
        if isinstance(operation, ops.CreateModel):
            table = operation.options.get("db_table") or truncate_name(
                f"{migration.app_label}_{operation.name_lower}", MAX_IDENTIFIER_BYTES
            )
            tables.add(table)
    return tables


def walk(operations: list, state: ProjectState, app_label: str) -> Iterator[tuple]:
    """(operation, state before it) for every operation that touches the database, including
    those inside Safely and SeparateDatabaseAndState(database_operations=...)."""
    state = state.clone()
    for operation in operations:
        yield operation, state
        inner = []
        if isinstance(operation, Safely):
            inner = operation.operations
        elif isinstance(operation, ops.SeparateDatabaseAndState):
            inner = operation.database_operations
        yield from walk(inner, state, app_label)
        operation.state_forwards(app_label, state)


# --- Django-level rules --------------------------------------------------------------------------


def check_operations(item: LintedMigration) -> None:
    migration = item.migration
    app = migration.app_label
    start = item.before
    for operation, state in walk(migration.operations, start, app):
        name = type(operation).__name__
        if isinstance(operation, ops.RunSQL):
            item.add("raw-sql", "RunSQL")
        if migration.atomic and _is_concurrent(operation):
            item.add("concurrent-index-in-atomic-migration", operation.describe())
        elif migration.atomic and isinstance(operation, Safely | SafeSQL | RequireJob):
            item.add("lock-safe-operation-in-atomic-migration", name)
        model_key = (app, _model_of(operation))
        existing = model_key in start.models and model_key in state.models
        if not existing:
            continue
        table = _table(state, model_key)
        if isinstance(operation, ops.AddField | ops.AlterField):
            old = state.models[model_key].fields.get(operation.name)
            new = operation.field
            if _changes_primary_key(old, new):
                item.add("alter-primary-key", f"{name} {table}.{operation.name}")
            if (isinstance(operation, ops.AddField) and not new.null and not new.many_to_many
                    and new.db_default is NOT_PROVIDED and not new.primary_key):
                item.add("not-null-without-db-default", f"AddField {table}.{operation.name}")
            if _adds_index(old, new):
                item.add("index-on-existing-table", f"{name} {table}.{operation.name}")
        elif isinstance(operation, ops.AddIndex) and not _is_concurrent(operation):
            item.add("index-on-existing-table", f"AddIndex {operation.index.name} on {table}")
        elif isinstance(operation, ops.AddConstraint) and isinstance(
            operation.constraint, UniqueConstraint
        ):
            item.add("index-on-existing-table", f"AddConstraint {operation.constraint.name} "
                     f"(unique) on {table}")
        elif isinstance(operation, ops.AlterUniqueTogether | ops.AlterIndexTogether):
            option = operation.option_name
            old_sets = normalize_together(state.models[model_key].options.get(option) or set())
            new_sets = normalize_together(operation.option_value or set())
            if set(new_sets) - set(old_sets):
                item.add("index-on-existing-table", f"{name} on {table}")


def _model_of(operation) -> str | None:
    if isinstance(operation, ops.AlterUniqueTogether | ops.AlterIndexTogether):
        return operation.name_lower
    return getattr(operation, "model_name_lower", None)


def _is_concurrent(operation) -> bool:
    if isinstance(operation, CONCURRENT_INDEX_OPERATIONS):
        return True
    if isinstance(operation, SafeSQL):
        return any("CONCURRENTLY" in str(s).upper() for step in operation.steps for s in step)
    return False


def _table(state: ProjectState, model_key: tuple[str, str]) -> str:
    model = state.models[model_key]
    default = f"{model_key[0]}_{model_key[1]}"
    return model.options.get("db_table") or truncate_name(default, MAX_IDENTIFIER_BYTES)


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


# --- SQL-level rules -----------------------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})?"
_TARGET = re.compile(
    rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<alter>{_QUALIFIED})"
    rf"|\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<create>{_QUALIFIED})"
    rf"|\bINDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:{_QUALIFIED}\s+)?"
    rf"ON\s+(?:ONLY\s+)?(?P<index>{_QUALIFIED})",
    re.I,
)
_REFERENCED = re.compile(rf"\bREFERENCES\s+(?P<ref>{_QUALIFIED})", re.I)
_IGNORE = re.compile(r"--\s*squawk-ignore(?:-file)?\b(?P<rest>[^\n]*)")


def _name(identifier: str) -> str:
    last = re.findall(_IDENT, identifier)[-1]
    return last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()


@dataclass(frozen=True)
class Statement:
    text: str
    start: int  # offsets into the migration's SQL
    end: int

    def tables(self) -> tuple[set[str], set[str]]:
        """(tables it alters, tables it only references)."""
        code = _strip_literals(self.text)
        targets = {_name(m[k]) for m in _TARGET.finditer(code) for k in ("alter", "create", "index")
                   if m[k]}
        referenced = {_name(m["ref"]) for m in _REFERENCED.finditer(code)}
        return targets, referenced - targets


def split_statements(sql: str) -> list[Statement]:
    """Split on top-level semicolons, minding quotes, comments and dollar-quoted bodies."""
    statements, start, i, n = [], 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            i = sql.find(c, i + 1)
            while i != -1 and sql[i + 1:i + 2] == c:  # doubled quote
                i = sql.find(c, i + 2)
            i = n if i == -1 else i + 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i == -1 else i
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            i = n if i == -1 else i + 2
        elif c == "$" and (m := re.match(r"\$[A-Za-z_0-9]*\$", sql[i:])):
            close = sql.find(m[0], i + len(m[0]))
            i = n if close == -1 else close + len(m[0])
        elif c == ";":
            statements.append(Statement(sql[start:i + 1], start, i + 1))
            start = i = i + 1
        else:
            i += 1
    if sql[start:].strip():
        statements.append(Statement(sql[start:], start, n))
    return statements


def _strip_literals(sql: str) -> str:
    """SQL with comments and string literals blanked out, so only code is searched."""
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def check_identifiers(item: LintedMigration) -> None:
    code = _strip_literals(item.sql)
    seen = set()
    for match in re.finditer(_IDENT, code):
        name = match[0][1:-1].replace('""', '"') if match[0].startswith('"') else match[0]
        if len(name.encode()) > MAX_IDENTIFIER_BYTES and name not in seen:
            seen.add(name)
            item.add("identifier-too-long", f"{name!r} is {len(name.encode())} bytes")


def check_squawk_ignores(item: LintedMigration) -> None:
    for match in _IGNORE.finditer(item.sql):
        _rules, sep, reason = match["rest"].partition("--")
        if not sep or len(reason.strip()) < MIN_REASON_LENGTH:
            item.add("squawk-ignore-without-reason", match[0].strip())


# The design's own way to add NOT NULL (DESIGN.md, fix 5): CHECK (col IS NOT NULL) NOT VALID,
# VALIDATE, SET NOT NULL (PostgreSQL 12+ then skips the scan), DROP the now redundant check.
# Squawk reads each statement alone and flags the last two; these recognise the sequence.
_ALTER = rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_QUALIFIED})\s+"
_SET_NOT_NULL = re.compile(_ALTER + rf"ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+SET\s+NOT\s+NULL",
                           re.I)
_CHECK_NOT_NULL = re.compile(_ALTER + rf"ADD\s+CONSTRAINT\s+(?P<name>{_IDENT})\s+CHECK\s*\(\s*"
                             rf"\(?\s*(?P<column>{_IDENT})\s+IS\s+NOT\s+NULL\s*\)?\s*\)", re.I)
_VALIDATE = re.compile(_ALTER + rf"VALIDATE\s+CONSTRAINT\s+(?P<name>{_IDENT})", re.I)
_DROP_CONSTRAINT = re.compile(_ALTER + rf"DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(?P<name>{_IDENT})",
                              re.I)


def _validated_not_null_checks(sql: str, table: str) -> dict[str, str]:
    """{constraint: column} of CHECK (column IS NOT NULL) constraints added and validated."""
    added = {_name(m["name"]): _name(m["column"]) for m in _CHECK_NOT_NULL.finditer(sql)
             if _name(m["table"]) == table}
    validated = {_name(m["name"]) for m in _VALIDATE.finditer(sql) if _name(m["table"]) == table}
    return {name: column for name, column in added.items() if name in validated}


def _set_not_null_after_validated_check(before: str, statement: str) -> bool:
    m = _SET_NOT_NULL.search(statement)
    return m is not None and _name(m["column"]) in _validated_not_null_checks(
        before, _name(m["table"])
    ).values()


def _drop_check_made_redundant_by_not_null(before: str, statement: str) -> bool:
    m = _DROP_CONSTRAINT.search(statement)
    if m is None:
        return False
    table = _name(m["table"])
    column = _validated_not_null_checks(before, table).get(_name(m["name"]))
    return column is not None and any(
        _name(s["table"]) == table and _name(s["column"]) == column
        for s in _SET_NOT_NULL.finditer(before)
    )


RECOGNISED_SAFE_PATTERNS = {
    "adding-not-nullable-field": _set_not_null_after_validated_check,
    "ban-drop-constraint": _drop_check_made_redundant_by_not_null,
}


# --- squawk --------------------------------------------------------------------------------------


def squawk_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("squawk")
    return str(beside_python) if beside_python.exists() else shutil.which("squawk")


def run_squawk(linted: list[LintedMigration], config: Path) -> None:
    """One squawk run over every migration's SQL; findings go to their migration."""
    with_sql = [item for item in linted if item.sql.strip()]
    if not with_sql:
        return
    binary = squawk_binary()
    if binary is None:
        for item in with_sql:
            item.add("squawk-failed", "squawk is not installed")
        return
    with tempfile.TemporaryDirectory(prefix="lint-migrations-") as tmp:
        files = {}
        for index, item in enumerate(with_sql):
            path = Path(tmp) / f"{index:04d}_{item.migration.app_label}_{item.migration.name}.sql"
            path.write_text(item.sql)
            files[str(path)] = item
        result = subprocess.run(
            [binary, "--config", str(config), "--reporter", "json", *files],
            capture_output=True, text=True, check=False, timeout=300,
        )
        try:
            findings = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            findings = None
        if result.returncode not in (0, 1) or findings is None:
            detail = (result.stderr or result.stdout).strip()[:500]
            for item in with_sql:
                item.add("squawk-failed", f"exit {result.returncode}: {detail}")
            return
    for finding in findings:
        item = files.get(finding["file"])
        if item is not None:
            _add_squawk_finding(item, finding)


def _offset(sql: str, line: int, column: int) -> int:
    """Squawk's zero-based (line, column) as an offset into the text."""
    lines = sql.split("\n")
    return sum(len(text) + 1 for text in lines[:line]) + column


def _add_squawk_finding(item: LintedMigration, finding: dict) -> None:
    rule = finding["rule_name"]
    at = _offset(item.sql, finding["line"], finding["column"])
    statement = next((s for s in split_statements(item.sql) if s.start <= at < s.end), None)
    text = " ".join(_strip_literals(statement.text).split()) if statement else ""
    if statement is not None and rule in SAFE_ON_NEW_TABLES:
        targets, referenced = statement.tables()
        scope = targets if SAFE_ON_NEW_TABLES[rule] == "target" else targets | referenced
        if targets and scope <= item.new_tables:
            return  # a table this migration just created: empty, and no running code uses it
    if statement is not None and rule in RECOGNISED_SAFE_PATTERNS:
        before_it = _strip_literals(item.sql[:statement.start])
        if RECOGNISED_SAFE_PATTERNS[rule](before_it, _strip_literals(statement.text)):
            return
    if any(v.rule == rule and v.source == "django" for v in item.violations):
        return  # said already, with this project's advice (e.g. identifier-too-long)
    instead = SQUAWK_HINTS.get(rule) or finding.get("help") or ""
    violation = Violation(
        item.migration.app_label, item.migration.name, rule, finding["message"], instead,
        source="squawk", sql=text[:200] + ("..." if len(text) > 200 else ""),
    )
    if violation not in item.violations:  # e.g. one finding per column of one DROP COLUMN
        item.violations.append(violation)


# --- exceptions ----------------------------------------------------------------------------------


def known_squawk_rules() -> set[str]:
    return set(SQUAWK_HINTS) | set(SAFE_ON_NEW_TABLES) | {"syntax-error"}


def apply_exceptions(item: LintedMigration) -> list[Violation]:
    """Drop the violations the migration excuses with a written reason; police the excuses."""
    excused = {}
    problems = []
    for rule, reason in item.exceptions.items():
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_LENGTH:
            problems.append(("exception-without-reason", f"LINT_EXCEPTIONS[{rule!r}]"))
        else:
            excused[rule] = reason
    kept = [v for v in item.violations if v.rule not in excused]
    used = {v.rule for v in item.violations}
    for rule in excused:
        if rule not in used:
            known = rule in RULES or rule in known_squawk_rules() or _looks_like_squawk_rule(rule)
            problems.append(
                ("unused-exception" if known else "unknown-rule-in-exception",
                 f"LINT_EXCEPTIONS[{rule!r}]")
            )
    for rule, detail in problems:
        item.add(rule, detail)
        kept.append(item.violations[-1])
    return kept


def _looks_like_squawk_rule(rule: str) -> bool:
    """Whether squawk knows `rule`: it refuses an unknown one in --exclude."""
    binary = squawk_binary()
    if binary is None or not re.fullmatch(r"[a-z][a-z0-9-]+", rule):
        return False
    result = subprocess.run([binary, f"--exclude={rule}", "--help"], capture_output=True,
                            check=False, timeout=30)
    return result.returncode == 0
