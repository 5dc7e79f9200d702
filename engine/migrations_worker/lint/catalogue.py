"""The catalogue: every rule the linter reports, what goes wrong and what to write instead.

This is data on purpose. A Django-level rule is an entry in `RULES` plus one check function in
`django_rules`; a squawk rule gets this project's advice from `SQUAWK_HINTS`, and may be waived
for tables the migration itself created (`SAFE_ON_NEW_TABLES`). The reporting never branches on
a rule id.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        "use migrations_worker.operations.SafeSQL: each step runs under lock_timeout and "
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
    "stage-not-declared": Rule(
        "does not say when it may run in a rolling deploy",
        "declare `stage = Stage.PRE` (expand: safe while the previous release still runs) or "
        "`stage = Stage.POST` (contract: only once the new release runs everywhere) on the "
        "Migration class (`from migrations_worker.operations import Stage`)",
    ),
    "contract-operation-in-pre-deploy": Rule(
        "is a pre-deploy migration with a contract step, which the previous release, still "
        "running while pre-deploy migrations apply, may not survive",
        "move the step to a post-deploy migration (`stage = Stage.POST`), after the rollout; "
        "keep the previous release working meanwhile (a trigger that keeps both releases' data "
        "in step, state-only removal first); if the previous release provably cannot break on "
        "it, say why in LINT_EXCEPTIONS",
    ),
    "pre-deploy-depends-on-post-deploy": Rule(
        "is a pre-deploy migration that depends on a post-deploy one, so it could only run "
        "after the rollout it has to precede",
        "make it post-deploy too, or take the dependency away (order the pre-deploy work "
        "before every post-deploy migration of its app)",
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
    "require-lock-timeout": "wrap the operation in migrations_worker.operations.Safely(...) (Django "
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

# Squawk rules known without asking squawk (the squawk layer asks it about any other id).
KNOWN_SQUAWK_RULES: frozenset[str] = frozenset({*SQUAWK_HINTS, *SAFE_ON_NEW_TABLES, "syntax-error"})
