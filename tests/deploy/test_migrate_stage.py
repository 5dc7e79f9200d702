"""What a pipeline's release step may apply. Under production settings plain `manage.py migrate`
applies the pre-deploy stage only (`MIGRATIONS_WORKER["MIGRATE_STAGE"] = "pre"`) and says how
to apply the rest; `migrate_online --require-complete` exits 8 while the stage has work left,
where it would otherwise stop cleanly at a gate with exit 0."""

import os
import secrets
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from migrations_worker.checks import migrate_stage_is_known
from migrations_worker.models import JobRun, RunStatus
from tests.conftest import ROOT
from tests.engine_app.support import GATED, JOB, applied, scratch_broker_url

pytestmark = pytest.mark.django_db(transaction=True)

POST = ("assets", "0013_drop_legacy_text_columns")


def production_manage(url: str, *args: str) -> subprocess.CompletedProcess:
    """manage.py with the production settings, as the image runs it, on the database `url`."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("DEBUG", "MW_TARGETS_FILE")},
           "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "investments.example.com",
           "DATABASE_URL": url, "REDIS_URL": scratch_broker_url()}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def is_applied(url: str, app: str, name: str) -> bool:
    with psycopg.connect(url) as db:
        return db.execute("SELECT 1 FROM django_migrations WHERE app = %s AND name = %s",
                          [app, name]).fetchone() is not None


def test_under_production_settings_plain_migrate_applies_the_pre_deploy_stage_only(fresh_database):
    result = production_manage(fresh_database, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "migrate: the pre-deploy stage only (MIGRATIONS_WORKER['MIGRATE_STAGE'] = 'pre')" in out
    assert "After the rollout: `python manage.py migrate_online --stage post`" in out
    assert "`python manage.py migrate_online --stage all`" in out  # a new database
    assert "applying assets.0012_enqueue_ticker_dedup... OK" in out
    assert "pre-deploy stage done; 3 post-deploy migration(s) wait for" in out
    assert is_applied(fresh_database, "assets", "0012_enqueue_ticker_dedup")
    assert not is_applied(fresh_database, *POST)

    post = production_manage(fresh_database, "migrate_online", "--stage", "post")
    assert post.returncode == 0, post.stdout + post.stderr
    assert is_applied(fresh_database, *POST)
    assert production_manage(fresh_database, "migrate_online", "--check").returncode == 0


def test_plain_migrate_set_to_the_pre_stage_exits_8_at_a_gate_with_its_job_enqueued(
    seeded_before_the_gate,
):
    pre_only = {**settings.MIGRATIONS_WORKER, "MIGRATE_STAGE": "pre"}
    with override_settings(MIGRATIONS_WORKER=pre_only), pytest.raises(CommandError) as stopped:
        call_command("migrate", verbosity=0)
    assert stopped.value.returncode == 8
    assert "the pre-deploy stage is not complete: 1 migration(s) wait for data jobs" in str(
        stopped.value)
    assert "python manage.py migrate_online --stage pre --wait" in str(stopped.value)
    assert not applied(*GATED.split("."))
    assert JobRun.objects.get(job_name=JOB).status == RunStatus.RUNNING  # there for the workers


def test_require_complete_exits_8_while_a_gate_holds_and_0_once_the_stage_is_done(
    seeded_before_the_gate, manage
):
    held = manage("migrate_online", "--require-complete")
    assert held.returncode == 8, held.stdout + held.stderr
    assert f"{GATED} waits for job {JOB}" in held.stdout
    assert "stopped cleanly" not in held.stdout
    assert "the pre-deploy stage is not complete" in held.stderr

    call_command("backfill", "run", JOB)
    done = manage("migrate_online", "--require-complete")
    assert done.returncode == 0, done.stdout + done.stderr
    assert applied(*GATED.split("."))


def test_require_complete_goes_with_applying_not_with_check_or_plan(manage):
    for mode in ("--check", "--plan"):
        result = manage("migrate_online", mode, "--require-complete")
        assert result.returncode == 2, result.stderr
        assert "--require-complete goes with applying a stage" in result.stderr


@pytest.mark.parametrize(("value", "errors"), [("all", 0), ("pre", 0), ("post", 1), ("yes", 1)])
def test_migrate_stage_is_all_or_pre_else_the_system_check_fails(value, errors):
    with override_settings(MIGRATIONS_WORKER={**settings.MIGRATIONS_WORKER, "MIGRATE_STAGE": value}):
        found = migrate_stage_is_known()
    assert [e.id for e in found] == ["migrations_worker.E008"] * errors
