"""`migrate_online`, the deploy step's migrate: applies what is safe, stops (or waits) at the
gates, and tells a pipeline by its exit code whether anything is pending."""

import json
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
from django.utils import timezone

from migrations_worker.deploy import costs
from migrations_worker.deploy import plan as cost_plan
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.runs import control, runner
from migrations_worker.runs.progress import sampled_rate
from migrations_worker.runs.states import transition
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
    assert [line for line in plan.stdout.splitlines()[1:]
            if line.startswith(("  assets.", "      gate:"))] == [
        "  assets.0013_drop_legacy_text_columns  [post-deploy]",
        "      gate: legacy_columns: finished",
        "  assets.0014_asset_ticker_exchange_unique  [post-deploy]",
        # Enqueued by the pre stage, no worker has taken it, and nothing is left to do.
        "      gate: ticker_dedup: 0 row(s) left, finished inline when applied",
        "  assets.0015_drop_duplicate_guard  [post-deploy]",
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


ASSETS = """
INSERT INTO assets_country (iso_code, name, is_deleted, created_at, updated_at)
VALUES ('XX', 'Nowhere', false, now(), now());
INSERT INTO assets_currency (code, name, is_deleted, created_at, updated_at)
VALUES ('XXX', 'None', false, now(), now());
INSERT INTO assets_exchange (mic, name, country_id, currency_id, created_at, updated_at)
SELECT 'XNOW', 'Nowhere', c.id, k.id, now(), now() FROM assets_country c, assets_currency k;
INSERT INTO assets_asset (ticker, name, exchange_id, currency_id, is_deleted, created_at, updated_at)
SELECT 'T' || g, 'Asset ' || g, e.id, e.currency_id, false, now(), now()
FROM generate_series(1, 3000) g, assets_exchange e;
"""


def test_plan_says_what_each_statement_locks_on_how_big_a_table_for_how_long(fresh_database):
    assert manage_on(fresh_database, "migrate_online").returncode == 0  # post-deploy left
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(ASSETS)
        conn.execute("VACUUM ANALYZE assets_asset")  # its size settles (free space and visibility maps)
        rows, size = conn.execute("SELECT reltuples::bigint, pg_total_relation_size(oid) FROM "
                                  "pg_class WHERE oid = 'assets_asset'::regclass").fetchone()
    assert rows == 3_000

    result = manage_on(fresh_database, "migrate_online", "--plan", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["stage"] == "all"
    assert [m["migration"] for m in found["migrations"]] == [
        "assets.0013_drop_legacy_text_columns", "assets.0014_asset_ticker_exchange_unique",
        "assets.0015_drop_duplicate_guard"]
    assert {m["stage"] for m in found["migrations"]} == {"post"}
    by_sql = {s["sql"]: (m["migration"], step, s) for m in found["migrations"]
              for step in m["steps"] for s in step["statements"]}
    drop = "ALTER TABLE assets_asset DROP COLUMN IF EXISTS sector, DROP COLUMN IF EXISTS industry;"
    migration, step, statement = by_sql[drop]
    assert migration == "assets.0013_drop_legacy_text_columns" and step["transaction"]
    assert (statement["lock"], statement["hold"], statement["lock_timeout"]) == (
        "ACCESS EXCLUSIVE", "brief", "20ms")  # the lock retry's first request
    assert statement["tables"] == [{"table": "assets_asset", "lock": "ACCESS EXCLUSIVE",
                                    "hold": "brief", "rows": 3_000, "bytes": size, "new": False}]
    assert statement["seconds"] == 0.0
    [index] = [s for _, _, s in by_sql.values() if s["kinds"] == ["create index concurrently"]]
    assert (index["lock"], index["hold"], index["lock_timeout"]) == (
        "SHARE UPDATE EXCLUSIVE", "build", "60s")
    assert index["blocks"] == "reads and writes go on (other DDL and VACUUM wait)"
    assert index["seconds"] == pytest.approx(3 * size / found["assumptions"]["scan_bytes_per_second"])
    # The lookup index the post stage drops is found by its name, on its table.
    [drop_index] = [s for _, _, s in by_sql.values() if s["kinds"] == ["drop index concurrently"]]
    assert drop_index["tables"][0]["table"] == "assets_asset"
    assert found["totals"]["strongest_lock"] == "ACCESS EXCLUSIVE"
    assert {job["job"] for job in found["jobs"].values()} == {"legacy_columns", "ticker_dedup"}

    text = manage_on(fresh_database, "migrate_online", "--plan", "--stage", "post")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    at = lines.index(f"        {drop}")
    assert lines[at + 1].startswith("          ACCESS EXCLUSIVE on assets_asset (3,000 rows, ")
    assert lines[at + 1].endswith("catalog-only change, brief (catalog only); blocks reads and "
                                  "writes; its first lock request waits at most 20ms")
    assert any(line.startswith("      step ") and "one transaction" in line for line in lines)
    assert any(line.startswith("estimated: schema changes ") for line in lines)
    assert lines[-1].startswith("estimated deploy with 2 worker(s): ")


def test_plan_estimates_a_jobs_duration_from_the_pace_of_its_run_or_else_at_the_default_rate(
    seeded_before_the_gate, manage
):
    before = json.loads(manage("migrate_online", "--plan", "--json").stdout)["jobs"][JOB]
    assert (before["rows"], before["rows_source"]) == (5_000, "counted now")
    assert (before["rate"], before["rate_source"]) == (
        5_000.0, "default rate, no run yet, 5,000 rows/s a worker")
    assert before["seconds"] == 1.0

    Knob.objects.create(name="sleep", value=0.01)
    run = control.create_run(JOB, options={"batch_size": 100, "max_batch_size": 100})
    transition(run.pk, RunStatus.RUNNING, using="default", actor="test", started_at=timezone.now())
    runner.RunWorker(run.pk, name="test").work(max_seconds=0.6)  # a few batches, then stop
    transition(run.pk, RunStatus.PAUSING, using="default", actor="test")
    run.refresh_from_db()
    pace = sampled_rate(run)
    # What is left, counted (the run's own rows_done lags: the next claim folds a batch in).
    left = touches_histogram()[0]
    assert pace and 0 < left < 5_000

    after = json.loads(manage("migrate_online", "--plan", "--json").stdout)["jobs"][JOB]
    assert after["rows"] == left
    assert after["rate_source"] == f"the pace of run #{run.pk}'s latest batches"
    assert after["rate"] == pytest.approx(pace)
    assert after["seconds"] == pytest.approx(left / pace)
    text = manage("migrate_online", "--plan").stdout
    assert f"job {JOB} (requires): {left:,} row(s) to do (counted now), " in text


def test_plan_prints_each_unapplied_migration_with_its_gate(seeded_before_the_gate, manage):
    result = manage("migrate_online", "--plan")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    enqueue = lines.index("  engine_app.0002_enqueue_touch_widgets  [pre-deploy]")
    assert lines[enqueue + 1].strip() == f"enqueues: {JOB}"
    gate = lines.index(f"  {GATED}  [pre-deploy]")
    assert lines[gate + 1].strip() == f"gate: {JOB}: no run yet, 5,000 row(s) to do"
    assert not JobRun.objects.exists()  # --plan changes nothing
    assert not applied("engine_app", "0002_enqueue_touch_widgets")


def test_wait_goes_on_past_the_gate_once_the_workers_finish_the_job(
    seeded_before_the_gate, manage, celery_env, celery_worker
):
    # 50 batches of at least 50 ms: the gate is reached with far more than its inline limit
    # (1,000 rows) left, however fast the worker starts.
    Knob.objects.create(name="sleep", value=0.05)
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
    transition(run.pk, RunStatus.RUNNING, using="default", actor="test")
    transition(run.pk, RunStatus.FAILED, using="default", actor="test",
               message="injected failure")
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


def test_plan_names_a_migration_whose_sql_cannot_be_rendered_and_goes_on_past_it(
    seeded_before_the_gate, monkeypatch
):
    real = cost_plan.collect_sql

    def refusing(migration, state, connection):
        if migration.name == "0002_enqueue_touch_widgets":
            raise RuntimeError("cannot render this one")
        return real(migration, state, connection)

    monkeypatch.setattr(cost_plan, "collect_sql", refusing)
    found = {m.migration: m for m in cost_plan.build().migrations}
    assert found["engine_app.0002_enqueue_touch_widgets"].error == "RuntimeError: cannot render this one"
    assert found["engine_app.0002_enqueue_touch_widgets"].steps == []
    assert found[GATED].error == "" and found[GATED].jobs[0].job == JOB
    line = "      SQL not renderable: RuntimeError: cannot render this one"
    assert line in costs.text_lines(cost_plan.build())
