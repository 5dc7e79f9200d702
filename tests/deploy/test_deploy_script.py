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


def deploy(stage: str, database_url: str, settings_module: str = "config.settings.production",
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
    return subprocess.run([str(SCRIPT), *([stage] if stage else [])], cwd="/", env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_pre_then_post_migrate_an_empty_database_end_to_end_with_production_settings(fresh_database):
    pre = deploy("pre", fresh_database)

    assert pre.returncode == 0, pre.stdout + pre.stderr
    out = pre.stdout
    steps = ["1/4 database", "2/4 preflight", "3/4 migrate (pre-deploy migrations)", "4/4 postflight"]
    positions = [out.index(f"=== {step} ===") for step in steps]
    assert positions == sorted(positions)
    assert "database is up" in out
    assert "preflight: no session" in out
    assert "applying assets.0001_initial... OK" in out
    assert "applying assets.0012_enqueue_ticker_dedup... OK" in out
    assert "assets.0013_drop_legacy_text_columns" not in out  # post-deploy: after the rollout
    assert "3 post-deploy migration(s) wait for `migrate_online --stage post`" in out
    assert "every index is valid and every constraint validated" in out
    assert out.rstrip().endswith(
        "[deploy pre] pre-deploy stage done: roll out the new release, then run `deploy/deploy.sh post`")

    post = deploy("post", fresh_database)
    assert post.returncode == 0, post.stdout + post.stderr
    assert "applying assets.0013_drop_legacy_text_columns... OK" in post.stdout
    assert "applying assets.0015_drop_duplicate_guard... OK" in post.stdout
    assert post.stdout.rstrip().endswith("[deploy post] post-deploy stage done: nothing pending")

    for stage in ("pre", "post"):  # a re-deploy with nothing to do is a no-op that succeeds
        again = deploy(stage, fresh_database)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "applying" not in again.stdout


def test_post_before_pre_is_refused_and_changes_nothing(fresh_database):
    result = deploy("post", fresh_database)

    assert result.returncode == 3, result.stdout + result.stderr
    assert "the post-deploy stage cannot start" in result.stderr
    assert "pre-deploy migration(s) are not applied yet" in result.stderr
    assert "migrate_online --stage pre --wait" in result.stderr
    with psycopg.connect(fresh_database) as db:
        assert db.execute("SELECT to_regclass('django_migrations')").fetchone()[0] is None


def test_deploy_without_a_stage_says_how_to_use_it():
    result = deploy("", "postgres://postgres@127.0.0.1:1/unused")
    assert result.returncode == 2
    assert "usage: deploy/deploy.sh pre|post" in result.stderr


def test_deploy_exits_5_when_the_database_never_comes_up():
    unreachable = "postgres://postgres@127.0.0.1:1/nothing_listens_here"
    result = deploy("pre", unreachable, DEPLOY_DB_TIMEOUT="2")

    assert result.returncode == 5
    assert "database not reachable after 2s" in result.stderr
    assert "[deploy pre] FAILED (exit 5)" in result.stderr
    assert "2/4 preflight" not in result.stdout


def test_deploy_exits_7_when_postflight_finds_an_index_left_invalid(fresh_database):
    assert deploy("pre", fresh_database).returncode == 0
    with psycopg.connect(fresh_database, autocommit=True) as db:
        db.execute("CREATE TABLE deploy_probe (code int)")
        db.execute("INSERT INTO deploy_probe VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute("CREATE UNIQUE INDEX CONCURRENTLY deploy_probe_code_uniq "
                       "ON deploy_probe (code)")

    result = deploy("pre", fresh_database)
    assert result.returncode == 7
    assert "invalid index deploy_probe_code_uniq on deploy_probe" in result.stderr
    assert "[deploy pre] FAILED (exit 7)" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_stage_told_not_to_wait_stops_at_its_gate_and_exits_8_so_the_rollout_waits(
    test_database_url,
):
    """The test database, with engine_app's gated migration waiting on 5,000 widgets."""
    from migrations_worker.models import JobRun

    migrate_to(("engine_app", "0001_initial"))
    JobRun.objects.all().delete()
    make_widgets(5_000)
    try:
        result = deploy("pre", test_database_url, settings_module="config.settings.test",
                        TEST_REDIS_URL=settings.CELERY_BROKER_URL, DEPLOY_WAIT="0")
        assert result.returncode == 8, result.stdout + result.stderr
        assert f"engine_app.0003_require_touch_widgets waits for job {JOB}" in result.stdout
        assert "stopped cleanly" in result.stdout
        assert "the pre-deploy stage is not finished" in result.stderr
    finally:
        JobRun.objects.all().delete()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("UPDATE engine_app_widget SET touches = 1")
        migrate_to(LATEST)


def test_the_compose_migrate_services_run_the_two_stages():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["migrate"]["command"] == ["deploy/deploy.sh", "pre"]
    assert compose["services"]["migrate-post"]["command"] == ["deploy/deploy.sh", "post"]
    assert os.access(SCRIPT, os.X_OK)


def test_deploy_database_names_the_target_every_step_works_on(tmp_path):
    """DEPLOY_DATABASE reaches each manage.py call as `--database`: an undeclared one is refused
    before anything is touched, naming the declared targets."""
    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.eu]\nurl = "postgres://postgres@127.0.0.1:1/eu"\n')
    done = deploy("pre", "postgres://postgres@127.0.0.1:1/none", DEPLOY_DATABASE="us",
                  MW_TARGETS_FILE=str(targets))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown database 'us': the declared targets are default, eu" in done.stderr
    assert "=== 2/4 preflight ===" not in done.stdout
