"""deploy/deploy.sh, the production deploy step, end to end against the local services: the
production settings, a database of its own, and the exit codes a pipeline reads."""

import os
import secrets
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings

from tests.conftest import ROOT
from tests.engine_app.support import JOB, LATEST, make_widgets, migrate_to, scratch_broker_url

SCRIPT = ROOT / "deploy" / "deploy.sh"


def deploy(database_url: str, settings_module: str = "config.settings.production",
           timeout: float = 180, **extra: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHON": sys.executable,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": scratch_broker_url(),
        "TEST_REDIS_URL": scratch_broker_url(),
        **extra,
    }
    return subprocess.run([str(SCRIPT)], cwd="/", env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_deploy_migrates_an_empty_database_end_to_end_with_production_settings(fresh_database):
    result = deploy(fresh_database)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    stages = ["1/4 database", "2/4 preflight", "3/4 migrate", "4/4 postflight"]
    positions = [out.index(f"=== {stage} ===") for stage in stages]
    assert positions == sorted(positions)
    assert "database is up" in out
    assert "preflight: no session" in out
    assert "applying assets.0001_initial... OK" in out
    assert "every index is valid and every constraint validated" in out
    assert out.rstrip().endswith("[deploy] deployed; nothing pending")

    again = deploy(fresh_database)  # a re-deploy with nothing to do is a no-op that succeeds
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing pending" in again.stdout


def test_deploy_exits_5_when_the_database_never_comes_up():
    unreachable = "postgres://postgres@127.0.0.1:1/nothing_listens_here"
    result = deploy(unreachable, DEPLOY_DB_TIMEOUT="2")

    assert result.returncode == 5
    assert "database not reachable after 2s" in result.stderr
    assert "[deploy] FAILED (exit 5)" in result.stderr
    assert "2/4 preflight" not in result.stdout


def test_deploy_exits_7_when_postflight_finds_an_index_left_invalid(fresh_database):
    assert deploy(fresh_database).returncode == 0
    with psycopg.connect(fresh_database, autocommit=True) as db:
        db.execute("CREATE TABLE deploy_probe (code int)")
        db.execute("INSERT INTO deploy_probe VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute("CREATE UNIQUE INDEX CONCURRENTLY deploy_probe_code_uniq "
                       "ON deploy_probe (code)")

    result = deploy(fresh_database)
    assert result.returncode == 7
    assert "invalid index deploy_probe_code_uniq on deploy_probe" in result.stderr
    assert "[deploy] FAILED (exit 7)" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_deploy_stops_cleanly_at_a_gate_and_says_what_is_pending(test_database_url):
    """The test database, with engine_app's gated migration waiting on 5,000 widgets."""
    from migrations_worker.models import JobRun

    migrate_to(("engine_app", "0001_initial"))
    JobRun.objects.all().delete()
    make_widgets(5_000)
    try:
        result = deploy(test_database_url, settings_module="config.settings.test",
                        TEST_REDIS_URL=settings.CELERY_BROKER_URL)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"engine_app.0003_require_touch_widgets waits for job {JOB}" in result.stdout
        assert "stopped cleanly" in result.stdout
        assert "some migrations wait behind data jobs" in result.stdout
    finally:
        JobRun.objects.all().delete()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("UPDATE engine_app_widget SET touches = 1")
        migrate_to(LATEST)


def test_deploy_script_is_what_the_compose_migrate_service_runs():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["migrate"]["command"] == ["deploy/deploy.sh"]
    assert os.access(SCRIPT, os.X_OK)
