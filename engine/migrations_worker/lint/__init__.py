"""The migration linter: every migration's SQL through squawk, plus checks squawk cannot make.

Squawk reads SQL, so it sees what `sqlmigrate` shows but not what the migration *means*: it cannot
tell a table created a few lines up from a table with a billion rows, nor see that a field is
becoming a primary key. The Django-level rules read the operations against the project state
just before them. Both kinds of finding name the rule, say what goes wrong, and say what to
write instead.

Rules are data (`RULES`, `SQUAWK_HINTS`, `SAFE_ON_NEW_TABLES` in `catalogue`), in the spirit of
django-pg-zero-downtime-migrations: a new rule is a new entry and a small registered check in
`django_rules`, never a new branch in the reporting.

Exceptions live next to the migration they excuse, with their reason, as a module-level
`LINT_EXCEPTIONS = {"rule-id": "why this is safe here"}` in the migration file (Django-level and
squawk rule ids alike). An exception without a reason, for an unknown rule, or that excuses
nothing is itself a violation, so exceptions cannot outlive their cause. Inside SafeSQL a squawk
`-- squawk-ignore rule-id -- reason` comment is honoured too, but only with its `-- reason`.

One layer per module, each importing only those above it:

    catalogue        the rules: summary and advice, squawk hints, what new tables waive
    findings         Violation and LintedMigration, what every layer reports to
    sql              statements, identifiers and tables in SQL text; recognised safe sequences
    operation_kinds  which engine operations are lock-safe, concurrent or wrappers
    squawk           running squawk and mapping its findings to migrations
    excuses          LINT_EXCEPTIONS: read, applied and policed
    render           each migration's SQL as sqlmigrate prints it, the state before it
    django_rules     the Django-level rules, one registered check function each
    run              lint(): the whole run; lint_apps(): which apps it checks by default
"""

from .findings import Violation
from .run import LintResult, lint, lint_apps

__all__ = ["LintResult", "Violation", "lint", "lint_apps"]
