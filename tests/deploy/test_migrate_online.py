"""`migrate_online`, the deploy step's migrate: applies what is safe, stops (or waits) at the
gates, and tells a pipeline by its exit code whether anything is pending."""

import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from migrations_worker import control
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.states import transition
from tests.conftest import ROOT
from tests.engine_app.models import Knob
from tests.engine_app.support import (
    GATED,
    JOB,
    LATEST,
    applied,
    make_widgets,
    migrate_to,
    scratch_broker_url,
    touches_histogram,
)
from tests.scratch import server_url

pytestmark = pytest.mark.django_db(transaction=True)


def manage_on(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "TEST_REDIS_URL": scratch_broker_url()}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# --- an empty database -----------------------------------------------------------------------------


def test_empty_database_is_migrated_to_the_end_in_one_run_of_every_stage(fresh_database):
    before = manage_on(fresh_database, "migrate_online", "--check")
    assert before.returncode == 8
    assert "pending pre-deploy migration engine_app.0003_require_touch_widgets" in before.stdout
    assert "pending post-deploy migration assets.0013_drop_legacy_text_columns" in before.stdout

    result = manage_on(fresh_database, "migrate_online", "--stage", "all")
    assert result.returncode == 0, result.stderr
    assert "nothing pending" in result.stdout
    assert f"applying {GATED}... OK" in result.stdout

    after = manage_on(fresh_database, "migrate_online", "--check")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "nothing pending" in after.stdout
    with psycopg.connect(fresh_database) as check:
        recorded = check.execute("SELECT count(*) FROM django_migrations").fetchone()[0]
    assert recorded > 50
    # post_migrate ran: content types and permissions exist, as after a plain `migrate`
    with psycopg.connect(fresh_database) as check:
        assert check.execute("SELECT count(*) FROM auth_permission").fetchone()[0] > 0


# --- stages -----------------------------------------------------------------------------------------


def test_by_default_only_the_pre_deploy_stage_runs_and_post_goes_after_it(fresh_database):
    pre = manage_on(fresh_database, "migrate_online")
    assert pre.returncode == 0, pre.stdout + pre.stderr
    assert "applying assets.0012_enqueue_ticker_dedup... OK" in pre.stdout
    assert "assets.0013" not in pre.stdout
    assert "pre-deploy stage done; 3 post-deploy migration(s) wait for" in pre.stdout
    assert manage_on(fresh_database, "migrate_online", "--check", "--stage", "pre").returncode == 0
    plan = manage_on(fresh_database, "migrate_online", "--plan")
    assert plan.stdout.splitlines()[1:] == [
        "  assets.0013_drop_legacy_text_columns  (post-deploy)",
        "      gate: legacy_columns: finished",
        "  assets.0014_asset_ticker_exchange_unique  (post-deploy)",
        "      gate: ticker_dedup: 0 row(s) left, finished inline when applied",
        "  assets.0015_drop_duplicate_guard  (post-deploy)",
    ]

    post = manage_on(fresh_database, "migrate_online", "--stage", "post")
    assert post.returncode == 0, post.stdout + post.stderr
    assert "applying assets.0015_drop_duplicate_guard... OK" in post.stdout
    assert "post-deploy stage done; nothing pending" in post.stdout
    assert manage_on(fresh_database, "migrate_online", "--check").returncode == 0


def test_post_deploy_stage_refuses_while_a_pre_deploy_migration_waits_and_says_why(
    seeded_before_the_gate, manage
):
    manage("migrate_online")  # stops at engine_app's gate: 5,000 widgets to touch
    result = manage("migrate_online", "--stage", "post")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the post-deploy stage cannot start: 1 pre-deploy migration(s) are not applied yet" in (
        result.stderr)
    assert f"{GATED} (waits for job {JOB}: {JOB} #" in result.stderr
    assert "migrate_online --stage pre --wait" in result.stderr
    assert not applied("engine_app", "0003_require_touch_widgets")


# --- a seeded database with a big remainder --------------------------------------------------------


def test_big_remainder_stops_at_the_first_gate_with_exit_0_and_a_clear_report(
    seeded_before_the_gate, manage
):
    result = manage("migrate_online")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "applying engine_app.0002_enqueue_touch_widgets... OK" in out
    assert f"{GATED} waits for job {JOB}" in out
    assert "0 of ~5,000 rows" in out and "ETA" in out
    assert f"python manage.py backfill status {JOB} --watch" in out
    assert f"python manage.py backfill run {JOB}" in out
    assert "stopped cleanly" in out
    assert applied("engine_app", "0002_enqueue_touch_widgets")
    assert not applied("engine_app", "0003_require_touch_widgets")
    assert touches_histogram() == {0: 5_000}  # the big job was not done under migrate
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.RUNNING  # enqueued for the workers


def test_check_exits_8_while_a_gate_holds_and_0_once_everything_is_applied(
    seeded_before_the_gate, manage
):
    manage("migrate_online")
    pending = manage("migrate_online", "--check")
    assert pending.returncode == 8
    assert f"pending pre-deploy migration {GATED}" in pending.stdout
    assert f"pending job {JOB}" in pending.stdout

    call_command("backfill", "run", JOB)
    still = manage("migrate_online", "--check")
    assert still.returncode == 8  # the job is done, but the gated migration is not applied yet
    assert manage("migrate_online").returncode == 0
    done = manage("migrate_online", "--check")
    assert done.returncode == 0, done.stdout
    assert applied("engine_app", "0003_require_touch_widgets")
    assert touches_histogram() == {1: 5_000}


def test_check_exits_8_for_a_job_still_running_after_every_migration_is_applied(manage):
    JobRun.objects.all().delete()
    control.create_run(JOB, actor="test")
    result = manage("migrate_online", "--check")
    assert result.returncode == 8
    assert f"pending job {JOB}" in result.stdout
    JobRun.objects.all().delete()


def test_plan_prints_each_unapplied_migration_with_its_gate(seeded_before_the_gate, manage):
    result = manage("migrate_online", "--plan")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    enqueue = lines.index("  engine_app.0002_enqueue_touch_widgets  (pre-deploy)")
    assert lines[enqueue + 1].strip() == f"enqueues: {JOB}"
    gate = lines.index(f"  {GATED}  (pre-deploy)")
    assert lines[gate + 1].strip() == f"gate: {JOB}: no run yet, 5,000 row(s) to do"
    assert not JobRun.objects.exists()  # --plan changes nothing
    assert not applied("engine_app", "0002_enqueue_touch_widgets")


def test_wait_goes_on_past_the_gate_once_the_workers_finish_the_job(
    seeded_before_the_gate, manage, processes, celery_env
):
    # 50 batches of at least 50 ms: the gate is reached with far more than its inline limit
    # (1,000 rows) left, however fast the worker starts.
    Knob.objects.create(name="sleep", value=0.05)
    processes.worker("w1")
    result = manage("migrate_online", "--wait", "--timeout", "90", "--poll", "0.5",
                    env=celery_env)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # In this order: the enqueue migration, the gate waiting for the workers, the gated
    # migration once they are done, the end.
    steps = ["applying engine_app.0002_enqueue_touch_widgets... OK", f"{GATED} waits for job {JOB}",
             f"applying {GATED}... OK", "nothing pending"]
    assert all(step in out for step in steps), out
    assert [out.index(step) for step in steps] == sorted(out.index(step) for step in steps), out
    assert out.count(f"applying {GATED}...") == 1
    assert touches_histogram() == {1: 5_000}
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FINISHED
    # The workers did the job, not the deploy step: no batch ran inline.
    assert not run.batches.filter(worker__endswith="/inline").exists()
    assert not run.batches.filter(worker="migrate").exists()


def test_wait_times_out_with_exit_5_when_no_worker_runs_the_job(seeded_before_the_gate, manage):
    result = manage("migrate_online", "--wait", "--timeout", "2", "--poll", "0.2")
    assert result.returncode == 5
    assert "timed out waiting for" in result.stderr
    assert not applied("engine_app", "0003_require_touch_widgets")


def test_failed_gate_job_exits_4_with_the_retry_command(seeded_before_the_gate):
    run = control.create_run(JOB, actor="test")
    transition(run.pk, RunStatus.RUNNING, actor="test")
    transition(run.pk, RunStatus.FAILED, actor="test", message="injected failure")
    with pytest.raises(CommandError) as failed:
        call_command("migrate_online", verbosity=0)
    assert failed.value.returncode == 4
    assert "backfill retry" in str(failed.value)
    assert not applied("engine_app", "0003_require_touch_widgets")


def test_small_remainder_is_finished_inline_and_the_run_goes_to_the_end(manage):
    migrate_to(("engine_app", "0001_initial"))
    JobRun.objects.all().delete()
    make_widgets(500)
    try:
        result = manage("migrate_online")
        assert result.returncode == 0, result.stderr
        assert "nothing pending" in result.stdout
        assert touches_histogram() == {1: 500}
    finally:
        migrate_to(LATEST)


# --- preflight and postflight ----------------------------------------------------------------------


@pytest.fixture
def idle_in_transaction():
    """Another session that opened a transaction and went quiet, as a forgotten psql would."""
    session = psycopg.connect(server_url(connection.settings_dict["NAME"]),
                              application_name="forgotten-psql")
    session.execute("SELECT count(*) FROM engine_app_widget")
    yield session
    session.close()


def test_preflight_warns_about_a_session_idle_in_transaction_and_names_it(idle_in_transaction,
                                                                         manage):
    time.sleep(1.2)
    result = manage("migrate_online", "--preflight", "--min-age", "1")
    assert result.returncode == 0
    assert "forgotten-psql" in result.stdout
    assert "idle in transaction" in result.stdout
    assert "pg_terminate_backend" in result.stdout


def test_strict_preflight_exits_7_if_the_session_outlives_the_wait(idle_in_transaction, manage):
    time.sleep(1.2)
    result = manage("migrate_online", "--preflight", "--min-age", "1", "--session-wait", "1",
                    "--strict")
    assert result.returncode == 7
    assert "waiting up to 1s" in result.stdout


def test_preflight_wait_goes_on_as_soon_as_the_session_ends(idle_in_transaction, manage):
    time.sleep(1.2)
    threading.Timer(1.0, idle_in_transaction.commit).start()
    started = time.monotonic()
    result = manage("migrate_online", "--preflight", "--min-age", "1", "--session-wait", "30",
                    "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert "preflight: no session" in result.stdout


@pytest.fixture
def scratch_table():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE postflight_probe (id int PRIMARY KEY, code int)")
        cursor.execute("INSERT INTO postflight_probe SELECT g, g % 2 FROM generate_series(1, 10) g")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS postflight_probe")


def test_postflight_passes_on_a_clean_schema(manage):
    result = manage("migrate_online", "--postflight")
    assert result.returncode == 0, result.stderr
    assert "every index is valid" in result.stdout


def test_postflight_fails_loudly_on_an_invalid_index_left_by_a_failed_concurrent_build(
    scratch_table, manage
):
    with connection.cursor() as cursor, pytest.raises(Exception, match="could not create"):
        cursor.execute("CREATE UNIQUE INDEX CONCURRENTLY postflight_probe_code_uniq "
                       "ON postflight_probe (code)")
    result = manage("migrate_online", "--postflight")
    assert result.returncode == 7
    assert "invalid index postflight_probe_code_uniq on postflight_probe" in result.stderr


def test_postflight_fails_loudly_on_a_constraint_left_not_valid(scratch_table, manage):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE postflight_probe ADD CONSTRAINT postflight_probe_code_ck "
                       "CHECK (code >= 0) NOT VALID")
    result = manage("migrate_online", "--postflight")
    assert result.returncode == 7
    assert "unvalidated constraint postflight_probe_code_ck" in result.stderr
    assert "VALIDATE CONSTRAINT" in result.stderr
