"""`migrate_online --plan`'s estimate of the whole deploy: each job's rate from its run here,
else the rate the bench measured for it, else the site's default; the deploy walked on a clock
with `--workers` lanes (the clock's rules: tests/unit/test_plan_clock.py)."""

import json

import psycopg
import pytest
from django.utils import timezone

from migrations_worker.deploy import plan as cost_plan
from migrations_worker.models import RunStatus
from migrations_worker.runs import control, runner
from migrations_worker.runs.progress import sampled_rate
from migrations_worker.runs.states import transition
from tests.deploy.test_migrate_online import manage_on
from tests.engine_app.jobs import TouchWidgets
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB

pytestmark = pytest.mark.django_db(transaction=True)

# The legacy schema's assets (assets at 0006): 3,000 with a sector and an industry to archive,
# and 30 tickers listed twice on one exchange.
LEGACY_ASSETS = """
INSERT INTO assets_country (iso_code, name, is_deleted, created_at, updated_at)
VALUES ('XX', 'Nowhere', false, now(), now());
INSERT INTO assets_currency (code, name, is_deleted, created_at, updated_at)
VALUES ('XXX', 'None', false, now(), now());
INSERT INTO assets_exchange (mic, name, country_id, currency_id, created_at, updated_at)
SELECT 'XNOW', 'Nowhere', c.id, k.id, now(), now() FROM assets_country c, assets_currency k;
INSERT INTO assets_asset (ticker, name, exchange_id, currency_id, is_deleted, sector, industry,
                          created_at, updated_at)
SELECT 'T' || (g % 2970), 'Asset ' || g, e.id, e.currency_id, false, 'Tech', 'Software', now(),
       now()
FROM generate_series(1, 3000) g, assets_exchange e;
"""


def test_a_job_that_never_ran_here_is_planned_at_the_rate_the_bench_measured_for_it(
    fresh_database
):
    migrated = manage_on(fresh_database, "migrate", "assets", "0006")
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(LEGACY_ASSETS)

    result = manage_on(fresh_database, "migrate_online", "--plan", "--stage", "pre", "--json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    legacy, dedup = jobs["legacy_columns"], jobs["ticker_dedup"]
    # The engine's tables are not there yet, so no gate counts: the jobs do. ticker_dedup's
    # verification can; legacy_columns' needs its archive (0007): its estimate of a run counts.
    assert (dedup["rows"], dedup["rows_source"]) == (30, "counted now")
    assert (legacy["rows"], legacy["rows_source"]) == (6_000, "the job's estimate")
    assert (legacy["rate"], legacy["rate_source"]) == (
        15_762.0, "measured by the bench, 15,762 rows/s a worker")
    assert legacy["seconds"] == pytest.approx(6_000 / 15_762)
    assert (dedup["rate"], dedup["rate_source"]) == (78.0, "measured by the bench, 78 rows/s a worker")

    text = manage_on(fresh_database, "migrate_online", "--plan", "--stage", "pre").stdout
    assert ("job legacy_columns (enqueues): 6,000 row(s) to do (the job's estimate), <1s at 15,762 "
            "rows/s (measured by the bench, 15,762 rows/s a worker)") in text
    assert "for a job that has not run" not in text


@pytest.fixture
def replication_slot(fresh_database):
    """A physical slot on the test server, not reserving WAL yet; dropped afterwards. Slots are
    the server's: the name is the fresh database's, unique to this test worker."""
    name = fresh_database.rsplit("/", 1)[1] + "_slot"
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s)", [name])
    yield name
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", [name])


def test_the_plan_sizes_the_jobs_wal_and_growth_against_checkpoints_slots_and_autovacuum(
    fresh_database, replication_slot
):
    migrated = manage_on(fresh_database, "migrate", "assets", "0006")
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(LEGACY_ASSETS)
        conn.execute("ALTER TABLE assets_asset SET (autovacuum_vacuum_scale_factor = 0.01)")
        conn.execute("ANALYZE assets_asset")
        max_wal_size = conn.execute(
            "SELECT pg_size_bytes(current_setting('max_wal_size'))").fetchone()[0]

    result = manage_on(fresh_database, "migrate_online", "--plan", "--stage", "pre", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    legacy, dedup = found["jobs"]["legacy_columns"], found["jobs"]["ticker_dedup"]
    # Rows to do x the bytes a row the bench measured for each job (its class says).
    assert legacy["wal_bytes"] == 6_000 * 1_003.0 and legacy["growth_bytes"] == 6_000 * 384.0
    assert dedup["wal_bytes"] == 30 * 80_084.0 and dedup["growth_bytes"] == 30 * 42_208.0
    assert found["totals"]["wal_bytes"] == 6_000 * 1_003.0 + 30 * 80_084.0
    server = found["server"]
    assert server["max_wal_size"] == max_wal_size
    assert {"name": replication_slot, "kind": "physical", "active": False,
            "retained_bytes": None} in server["slots"]
    # Both jobs walk assets_asset: its threshold once, from its own scale factor (3,000 rows).
    assert server["vacuum"] == [{"table": "assets_asset", "rows": 3_000, "threshold": 80,
                                 "enabled": True}]

    text = manage_on(fresh_database, "migrate_online", "--plan", "--stage", "pre").stdout
    assert ("  WAL: ~8.0 MB (legacy_columns ~5.7 MB, ticker_dedup ~2.3 MB); max_wal_size "
            f"{max_wal_size / 2**30:.1f} GB: about 0 checkpoint(s) requested by it alone") in text
    assert (f"  replication slot {replication_slot} (physical, INACTIVE): the primary keeps this "
            "WAL on its disk until the slot moves past it") in text
    assert ("  vacuum: assets_asset (3,000 rows): autovacuum starts after ~80 dead rows") in text


def test_once_the_job_has_run_here_the_pace_of_its_run_wins_over_the_measured_rate(
    seeded_before_the_gate, monkeypatch
):
    monkeypatch.setattr(TouchWidgets, "measured_rows_per_second", 2_500.0)  # as a bench said
    before = cost_plan.build().jobs()[JOB]
    assert (before.rate, before.rate_source) == (
        2_500.0, "measured by the bench, 2,500 rows/s a worker")
    assert before.seconds == 2.0  # 5,000 widgets

    Knob.objects.create(name="sleep", value=0.01)
    run = control.create_run(JOB, options={"batch_size": 100, "max_batch_size": 100})
    transition(run.pk, RunStatus.RUNNING, using="default", actor="test", started_at=timezone.now())
    runner.RunWorker(run.pk, name="test").work(max_seconds=0.6)  # a few batches, then stop
    run.refresh_from_db()
    after = cost_plan.build().jobs()[JOB]
    assert after.rate_source == f"the pace of run #{run.pk}'s latest batches"
    assert after.rate == pytest.approx(sampled_rate(run))
    assert after.status == "running"  # its run goes on: on the clock from the start
    assert cost_plan.build().timeline().jobs[JOB].starts_at == 0.0


def test_the_deploy_is_walked_on_the_clock_with_its_job_on_a_worker_until_its_gate(
    seeded_before_the_gate, manage
):
    # engine_app: 0002 enqueues the job (5,000 rows, no measured rate: the default 5,000 rows/s),
    # 0003's gate waits for it; neither runs SQL.
    result = manage("migrate_online", "--plan", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    totals = found["totals"]
    assert (totals["workers"], totals["deploy_seconds"], totals["gate_seconds"]) == (2, 1.0, 1.0)
    assert totals["stages"] == {"pre": {"seconds": 1.0, "ddl_seconds": 0.0, "gate_seconds": 1.0},
                                "post": {"seconds": 0.0, "ddl_seconds": 0.0, "gate_seconds": 0.0}}
    span = {key: found["jobs"][JOB][key] for key in ("lanes", "enqueued_at", "starts_at",
                                                      "ends_at", "status")}
    assert span == {"lanes": 1, "enqueued_at": 0.0, "starts_at": 0.0, "ends_at": 1.0, "status": ""}
    assert found["migrations"][0]["parents"] == ["engine_app.0001_initial",
                                                 "migrations_worker.0001_initial"]
    assert found["migrations"][1]["gate_limits"] == {JOB: 1_000}

    text = manage("migrate_online", "--plan", "--workers", "1").stdout.splitlines()
    clock = text.index(
        "estimated deploy with 1 worker(s): ~1s (schema changes <1s, waiting at gates ~1s)")
    assert text[clock:clock + 4] == [
        "estimated deploy with 1 worker(s): ~1s (schema changes <1s, waiting at gates ~1s)",
        "  pre-deploy stage: ~1s (schema changes <1s, waiting at gates ~1s)",
        "  post-deploy stage: <1s (schema changes <1s, waiting at gates <1s)",
        f"  job {JOB}: enqueued at 0.0s, done at 1.0s (on 1 of the workers)",
    ]


@pytest.mark.parametrize(("args", "message"), [
    (["--plan", "--workers", "0"], "--workers: must be positive, got 0"),
    (["--plan", "--workers", "-2"], "--workers: must be positive, got -2"),
    (["--plan", "--workers", "two"], "--workers: must be a whole number, not 'two'"),
    (["--workers", "2"], "--workers goes with --plan"),
])
def test_a_plan_for_no_workers_or_workers_without_a_plan_is_refused(manage, args, message):
    result = manage("migrate_online", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
