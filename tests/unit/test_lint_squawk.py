"""Squawk's findings mapped to their migration: waived on the tables the migration created,
given this project's advice, said once, and a missing squawk reported rather than passed."""

from pathlib import Path

from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from migrations_worker.lint import squawk
from migrations_worker.lint.catalogue import SQUAWK_HINTS
from migrations_worker.lint.findings import LintedMigration

SQL = (
    "CREATE TABLE fresh (id bigint, old_id bigint);\n"
    "ALTER TABLE fresh ADD CONSTRAINT fresh_id_ck CHECK (id > 0);\n"
    "ALTER TABLE old ADD CONSTRAINT old_id_ck CHECK (id > 0);\n"
    "ALTER TABLE fresh ADD CONSTRAINT fresh_old_fk FOREIGN KEY (old_id) REFERENCES old (id);\n"
)


def linted(sql: str = SQL) -> LintedMigration:
    return LintedMigration(Migration("0002_change", "shop"), ProjectState(), exceptions={}, sql=sql,
                           new_tables={"fresh"})


def finding(rule: str, line: int) -> dict:
    return {"rule_name": rule, "line": line, "column": 0, "message": f"{rule} found",
            "help": "squawk's generic help"}


def test_finding_on_a_table_the_migration_created_is_waived_and_on_an_existing_table_kept():
    item = linted()
    squawk.add_finding(item, finding("constraint-missing-not-valid", line=1))
    assert item.violations == []
    squawk.add_finding(item, finding("constraint-missing-not-valid", line=2))
    [violation] = item.violations
    assert violation.source == "squawk"
    assert violation.instead == SQUAWK_HINTS["constraint-missing-not-valid"]
    assert violation.sql == "ALTER TABLE old ADD CONSTRAINT old_id_ck CHECK (id > 0);"


def test_lock_on_an_existing_referenced_table_is_not_waived_by_a_new_referencing_table():
    item = linted()
    squawk.add_finding(item, finding("adding-foreign-key-constraint", line=3))  # scans fresh only
    squawk.add_finding(item, finding("require-lock-timeout", line=3))  # locks old too
    assert [v.rule for v in item.violations] == ["require-lock-timeout"]


def test_finding_without_a_hint_keeps_squawks_help_and_is_said_once():
    item = linted()
    squawk.add_finding(item, finding("ban-truncate-cascade", line=2))
    squawk.add_finding(item, finding("ban-truncate-cascade", line=2))
    [violation] = item.violations
    assert violation.instead == "squawk's generic help"


def test_finding_the_django_rules_reported_already_is_not_repeated():
    item = linted()
    item.add("identifier-too-long", "'x' is 64 bytes")
    squawk.add_finding(item, finding("identifier-too-long", line=2))
    assert [v.source for v in item.violations] == ["django"]


def test_without_squawk_every_migration_with_sql_is_reported_unchecked(monkeypatch):
    monkeypatch.setattr(squawk, "binary", lambda: None)
    with_sql, without_sql = linted(), linted(sql="\n")
    squawk.run([with_sql, without_sql], Path("unused.toml"))
    assert [(v.rule, v.message.split(":")[0]) for v in with_sql.violations] == [
        ("squawk-failed", "squawk is not installed")
    ]
    assert without_sql.violations == []
