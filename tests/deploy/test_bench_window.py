"""The maintenance window the bench sets the online deploy against (bench/window.py): the release
as `sqlmigrate` renders it, turned offline (no CONCURRENTLY, no timeouts), each data job's
set-based SQL once before the first migration gated on it; and, applied to a seeded legacy
database, the same schema as the engine's own staged deploy leaves, with no job left undone."""

from __future__ import annotations

import argparse

import pytest
from django.conf import settings
from django.db import connection

from bench.databases import Templates
from bench.report import X
from bench.scale import window_table
from bench.window import (
    CANNOT,
    WindowError,
    differences,
    measure_window,
    offline,
    rendered_plan,
    schema,
    steps,
)
from tests.deploy.test_rolling_deploy import stage
from tests.scratch import ScratchDatabase
from tests.workers import Processes, flush_broker


@pytest.fixture(scope="module")
def seeded(django_db_blocker):
    """A seeded legacy database (small), under the development settings the bench runs: the
    test settings would add the test-only app's migrations to the release."""
    with django_db_blocker.unblock():
        db = ScratchDatabase(f"{connection.settings_dict['TEST']['NAME']}_window")
    db.create()
    db.env.update({"DJANGO_SETTINGS_MODULE": "config.settings.dev",
                   "REDIS_URL": settings.CELERY_BROKER_URL})
    db.migrate_legacy()
    db.manage("seed_demo", "--size", "small")
    yield db
    db.drop()


@pytest.fixture(scope="module")
def plan(seeded, tmp_path_factory):
    return rendered_plan(seeded.name, tmp_path_factory.mktemp("window") / "plan.json")


def test_the_offline_transform_drops_the_timeouts_and_builds_indexes_without_concurrently():
    rendered = [
        "--", "-- Create index i on t concurrently", "--",
        "SET lock_timeout = '60000ms';", "SET statement_timeout = '0';",
        'CREATE UNIQUE INDEX CONCURRENTLY "i" ON "t" ("c");',
        "DROP INDEX CONCURRENTLY IF EXISTS j;",
        ' DO $$ BEGIN SET LOCAL lock_timeout = 0; END $$ ;',
        'ALTER TABLE "t" ADD COLUMN "d" integer NULL;',
    ]
    assert offline(rendered) == [
        'CREATE UNIQUE INDEX "i" ON "t" ("c");',
        "DROP INDEX IF EXISTS j;",
        "DO $$ BEGIN SET LOCAL lock_timeout = 0; END $$ ;",
        'ALTER TABLE "t" ADD COLUMN "d" integer NULL;',
    ]


def test_a_concurrent_statement_the_window_cannot_turn_offline_stops_it():
    with pytest.raises(WindowError, match="REINDEX"):
        offline(["REINDEX INDEX CONCURRENTLY i;"])


def test_the_release_rendered_offline_keeps_no_online_scaffolding(plan):
    statements = [s for step in steps(plan) if step["kind"] == "migration"
                  for s in step["statements"]]
    assert not [s for s in statements if "CONCURRENTLY" in s or s.startswith("SET ")]
    by_name = {step["name"]: step for step in steps(plan) if step["kind"] == "migration"}
    assert by_name["investments.0007_alert_uuid_unique_index"]["statements"] == [
        'CREATE UNIQUE INDEX "investments_alert_uuid_uniq" ON "investments_alert" ("uuid");']
    assert "DROP INDEX IF EXISTS assets_asset_ticker_exchange_idx;" in (
        by_name["assets.0015_drop_duplicate_guard"]["statements"])


def test_each_job_runs_once_after_the_migration_that_enqueues_it_and_before_its_first_gate(plan):
    order = [step["name"] for step in steps(plan)]
    jobs = [name for name, step in zip(order, steps(plan), strict=True) if step["kind"] == "job"]
    assert sorted(jobs) == ["alerts_uuid", "legacy_columns", "ticker_dedup"]
    for job, enqueuer, first_gate in (
        ("alerts_uuid", "investments.0005_alert_uuid_expand", "investments.0006_alert_uuid_not_null"),
        ("legacy_columns", "assets.0008_retire_legacy_text_fields", "assets.0012_enqueue_ticker_dedup"),
        ("ticker_dedup", "assets.0012_enqueue_ticker_dedup", "assets.0014_asset_ticker_exchange_unique"),
    ):
        assert order.index(enqueuer) < order.index(job) == order.index(first_gate) - 1, job
    # Every migration of the plan, once, in the order Django planned them.
    assert [name for name in order if name not in jobs] == [m["label"] for m in plan]


def test_the_python_only_operation_of_the_release_runs_as_sql_inside_its_transaction(plan):
    axes = next(step for step in steps(plan)
                if step["name"] == "axes.0007_alter_accessattempt_unique_together")
    assert axes["statements"][0] == "BEGIN;"
    assert axes["statements"][1].startswith("DELETE FROM axes_accessattempt")
    assert axes["statements"][-1] == "COMMIT;"


def test_an_operation_the_window_does_not_know_how_to_write_stops_it(plan):
    unknown = {**plan[0], "label": "shop.0002_fill_prices", "python_only": [0],
               "statements": ["--", "-- Raw Python operation", "--", f"-- {CANNOT}"]}
    with pytest.raises(WindowError, match=r"shop\.0002_fill_prices"):
        steps([unknown])
    unaccounted = {**plan[0], "statements": [*plan[0]["statements"], f"-- {CANNOT}"]}
    with pytest.raises(WindowError, match="0 of them handled"):
        steps([unaccounted])


def test_the_window_leaves_no_job_undone_and_the_schema_of_the_engines_staged_deploy(
    seeded, tmp_path
):
    templates = Templates(scale="small", seed=seeded.name, alerts="", legacy="", dedup="",
                          max_ids={}, alerts_total=0)
    window = measure_window(templates, argparse.Namespace(keep=False), tmp_path, print,
                            database=f"{seeded.name}_offline")
    assert [job["name"] for job in window["jobs"]] == ["legacy_columns", "ticker_dedup",
                                                       "alerts_uuid"]
    assert all(job["rows"] > 0 and job["remaining"] == 0 for job in window["jobs"]), window["jobs"]
    assert window["alerts"] == seeded.scalar("SELECT count(*) FROM investments_alert")

    # The engine's own deploy, on the seeded database the window copied.
    flush_broker(settings.CELERY_BROKER_URL)
    processes = Processes(seeded.env, tmp_path)
    try:
        processes.worker("w1")
        processes.beat()
        stage(seeded, "pre")
        stage(seeded, "post")
    finally:
        processes.stop_all()
    assert differences(window["schema"], schema(seeded.name)) == []


def online(work: float, failed: int = 0) -> dict:
    return {"work_seconds": work, "seconds": work + 6.0, "error_count": failed,
            "previous": {"errors": 0}, "new": {"errors": 0}, "longest_deploy_wait_ms": 12.0,
            "longest_batch_wait_ms": 40.0}


def test_the_window_table_judges_the_time_goals_at_xlarge_and_lists_schema_differences():
    steps = [{"name": "alerts_uuid", "seconds": 60.0}, {"name": "m", "seconds": 30.0},
             {"name": "n", "seconds": 0.5}]
    window = {"seconds": 100.0, "remaining": 0, "migrations": steps[1:], "jobs": steps[:1],
              "steps": steps,
              "schema_differences": ["index only online: CREATE INDEX i ON t (c)"],
              "schema_differences_1_worker": [], "online_1_worker": online(130.0, failed=1)}
    entry = {**online(90.0), "scale": "xlarge", "alerts": 10_000_000, "window": window}
    text = "\n".join(window_table([entry]))
    assert (f"| online with 2 workers at most 1.0{X} the window's time at xlarge | 0.90{X} | yes |"
            in text)
    assert (f"| online with 1 worker at most 1.25{X} the window's time at xlarge | 1.30{X} | **no** |"
            in text)
    assert "0 and 1 failed (2 and 1 workers) | **no** |" in text
    assert "alerts_uuid 60.0 s, m 30.0 s" in text
    assert "- xlarge: index only online: CREATE INDEX i ON t (c)" in text
    assert "- xlarge: alerts_uuid 60.0 s, m 30.0 s\n" in text + "\n"  # n is under 1%
    row = next(line for line in text.splitlines() if line.startswith("| xlarge |"))
    assert row.endswith("| 0 | **no** |")  # nothing left undone, not the same schema
