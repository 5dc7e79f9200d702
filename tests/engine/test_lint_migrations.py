"""The migration linter end to end, on real migrations rendered by a real database: unsafe
migrations are rejected with what to do instead, the lock-safe operations pass, and an exception
holds only with a written reason next to the migration. Each rule's ok and err cases, which need
no database, are in tests/unit/test_lint_*.py."""

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from migrations_worker import lint
from tests.conftest import ROOT

UNSAFE = "tests.unsafe_app.settings"


def lint_command(*args: str, settings: str = "config.settings.test") -> subprocess.CompletedProcess:
    s = connection.settings_dict
    url = f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"
    env = {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": settings, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "manage.py", "lint_migrations", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def unsafe(django_db_setup, django_db_blocker):
    """The linter's JSON verdict on tests/unsafe_app, run once for the module."""
    result = lint_command("unsafe_app", "--format", "json", settings=UNSAFE)
    report = json.loads(result.stdout)
    by_migration: dict[str, dict[str, dict]] = {name: {} for name in report["migrations"]}
    for violation in report["violations"]:
        by_migration[violation["key"]].setdefault(violation["rule"], violation)
    return result.returncode, by_migration


def rules(unsafe, migration: str) -> set[str]:
    return set(unsafe[1][f"unsafe_app.{migration}"])


def test_linter_fails_the_build_when_a_migration_is_unsafe(unsafe):
    returncode, _ = unsafe
    assert returncode == 1


def test_plain_add_index_on_an_existing_table_is_rejected_with_the_concurrent_way_to_do_it(unsafe):
    assert {"index-on-existing-table", "require-concurrent-index-creation"} <= rules(
        unsafe, "0002_plain_index"
    )
    violation = unsafe[1]["unsafe_app.0002_plain_index"]["index-on-existing-table"]
    assert "SHARE lock that blocks every write" in violation["message"]
    assert "CreateIndexConcurrently" in violation["instead"]
    assert "atomic = False" in violation["instead"]


def test_not_null_add_field_without_db_default_is_rejected_with_the_db_default_advice(unsafe):
    found = rules(unsafe, "0003_not_null_without_db_default")
    assert "not-null-without-db-default" in found
    assert "require-lock-timeout" in found  # and it was not wrapped in Safely either
    violation = unsafe[1]["unsafe_app.0003_not_null_without_db_default"]
    assert "unsafe_app_gadget.rank" in violation["not-null-without-db-default"]["message"]
    assert "db_default" in violation["not-null-without-db-default"]["instead"]
    assert "Safely" in violation["require-lock-timeout"]["instead"]


def test_alter_field_to_a_new_primary_key_is_rejected_with_the_index_swap_advice(unsafe):
    assert "alter-primary-key" in rules(unsafe, "0004_new_primary_key")
    violation = unsafe[1]["unsafe_app.0004_new_primary_key"]["alter-primary-key"]
    assert "unsafe_app_gadget.uuid" in violation["message"]
    assert "PRIMARY KEY USING INDEX" in violation["instead"]
    assert "SeparateDatabaseAndState" in violation["instead"]


def test_run_sql_is_rejected_in_favour_of_safe_sql(unsafe):
    assert "raw-sql" in rules(unsafe, "0005_raw_sql")
    assert "SafeSQL" in unsafe[1]["unsafe_app.0005_raw_sql"]["raw-sql"]["instead"]


def test_concurrent_index_operation_in_an_atomic_migration_is_rejected(unsafe):
    assert "concurrent-index-in-atomic-migration" in rules(unsafe, "0006_concurrent_index_in_atomic")


def test_identifier_over_63_bytes_is_rejected(unsafe):
    found = unsafe[1]["unsafe_app.0007_long_identifier"]
    assert set(found) == {"identifier-too-long"}
    assert "74 bytes" in found["identifier-too-long"]["message"]


def test_new_table_in_an_initial_migration_passes(unsafe):
    assert rules(unsafe, "0001_initial") == set()


def test_lock_safe_operations_pass_safely_create_index_concurrently_and_safe_sql(unsafe):
    """Including NOT NULL the designed way: CHECK NOT VALID, VALIDATE, SET NOT NULL, DROP CHECK."""
    assert rules(unsafe, "0008_the_safe_way") == set()


def test_exception_with_a_written_reason_excuses_the_violation(unsafe):
    assert rules(unsafe, "0009_excused_with_a_reason") == set()


def test_exception_without_reason_for_unknown_rule_or_excusing_nothing_is_itself_a_violation(unsafe):
    assert rules(unsafe, "0010_bad_exceptions") == {
        "ban-drop-column",  # its exception has no reason, so it still stands
        "exception-without-reason",
        "unknown-rule-in-exception",
        "unused-exception",
    }


def test_a_migration_must_say_which_deploy_stage_it_belongs_to(unsafe):
    assert "stage-not-declared" in rules(unsafe, "0011_no_stage")
    assert "Stage.POST" in unsafe[1]["unsafe_app.0011_no_stage"]["stage-not-declared"]["instead"]


def test_a_contract_step_before_the_rollout_is_rejected_and_after_it_passes(unsafe):
    violation = unsafe[1]["unsafe_app.0012_contract_before_the_rollout"]
    assert set(violation) == {"contract-operation-in-pre-deploy"}
    assert "drops a column" in violation["contract-operation-in-pre-deploy"]["message"]
    assert rules(unsafe, "0013_contract_after_the_rollout") == set()


def test_a_pre_deploy_migration_that_depends_on_a_post_deploy_one_is_rejected(unsafe):
    violation = unsafe[1]["unsafe_app.0014_expand_after_contract"]
    assert set(violation) == {"pre-deploy-depends-on-post-deploy"}
    assert "unsafe_app.0013_contract_after_the_rollout" in (
        violation["pre-deploy-depends-on-post-deploy"]["message"])


def test_text_report_names_each_violation_and_how_to_excuse_one():
    result = lint_command("unsafe_app", settings=UNSAFE)
    assert result.returncode == 1
    assert "unsafe_app.0002_plain_index: [index-on-existing-table]" in result.stdout
    assert "instead: use CreateIndexConcurrently" in result.stdout
    assert "14 migration(s) checked, 4 clean" in result.stdout
    assert "LINT_EXCEPTIONS" in result.stderr


def test_unknown_app_is_bad_input():
    result = lint_command("no_such_app")
    assert result.returncode == 2
    assert "no_such_app" in result.stderr


@pytest.mark.django_db
def test_the_projects_own_migrations_pass():
    result = lint.lint()
    assert [v.format() for v in result.violations] == []
    assert {key.split(".")[0] for key in result.migrations} == set(settings.MIGRATIONS_WORKER["LINT_APPS"])
