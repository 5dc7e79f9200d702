"""LINT_EXCEPTIONS: a written reason excuses a violation; an exception without a reason, for a
rule nobody knows, or excusing nothing is itself reported, so none outlives its cause."""

import pytest
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from migrations_worker.lint import squawk
from migrations_worker.lint.excuses import apply_exceptions
from migrations_worker.lint.findings import LintedMigration

REASON = "the table is capped at a few hundred rows by design"


@pytest.fixture(autouse=True)
def no_squawk(monkeypatch):
    """Rule ids outside the catalogue count as unknown, whether squawk is installed or not."""
    monkeypatch.setattr(squawk, "binary", lambda: None)


def excused(exceptions: dict, *broken: str) -> list[tuple[str, str]]:
    """(rule, message) of what is left once `exceptions` apply to a migration breaking `broken`."""
    item = LintedMigration(Migration("0002_change", "shop"), ProjectState(), exceptions=exceptions)
    for rule in broken:
        item.add(rule)
    return [(v.rule, v.message.split(":")[0]) for v in apply_exceptions(item)]


def test_exception_with_a_written_reason_excuses_the_violation():
    assert excused({"raw-sql": REASON}, "raw-sql") == []


def test_exception_without_a_reason_excuses_nothing_and_is_reported():
    assert excused({"raw-sql": "because"}, "raw-sql") == [
        ("raw-sql", "runs raw SQL with RunSQL, which sets no lock_timeout and never retries"),
        ("exception-without-reason", "LINT_EXCEPTIONS['raw-sql']"),
    ]


def test_exception_excusing_nothing_is_reported_as_unused():
    assert excused({"raw-sql": REASON, "ban-drop-column": REASON}) == [
        ("unused-exception", "LINT_EXCEPTIONS['raw-sql']"),
        ("unused-exception", "LINT_EXCEPTIONS['ban-drop-column']"),  # a squawk rule
    ]


def test_exception_for_a_rule_that_does_not_exist_is_reported_as_unknown():
    assert excused({"no-such-rule": REASON}) == [
        ("unknown-rule-in-exception", "LINT_EXCEPTIONS['no-such-rule']")
    ]
