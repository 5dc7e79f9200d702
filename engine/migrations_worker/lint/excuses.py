"""Exceptions to the rules, written next to the migration they excuse, with their reason.

A migration file may say `LINT_EXCEPTIONS = {"rule-id": "why this is safe here"}` (Django-level
and squawk rule ids alike). An exception without a reason, for an unknown rule, or that excuses
nothing is itself a violation, so exceptions cannot outlive their cause.
"""

from __future__ import annotations

import sys

from django.db.migrations.migration import Migration

from . import squawk
from .catalogue import MIN_REASON_LENGTH, RULES
from .findings import LintedMigration, Violation


def written_exceptions(migration: Migration) -> dict[str, object]:
    """The migration file's LINT_EXCEPTIONS, as written (checked later, by `apply_exceptions`)."""
    module = sys.modules[type(migration).__module__]
    return dict(getattr(module, "LINT_EXCEPTIONS", {}))


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
            known = rule in RULES or squawk.knows_rule(rule)
            problems.append(
                ("unused-exception" if known else "unknown-rule-in-exception",
                 f"LINT_EXCEPTIONS[{rule!r}]")
            )
    for rule, detail in problems:
        item.add(rule, detail)
        kept.append(item.violations[-1])
    return kept
