"""A deploy of any target: `migrate_online --database NAME` migrates that database, its gates
and jobs and deploy lock its own, and leaves every other database as it was.

`far` is a database on the second server (config/settings/test.py); the subprocesses reach the
test databases through DATABASE_URL and SECOND_DATABASE_URL. The staged deploy runs on a scratch
database of its own on that server, seeded in the legacy state, with both releases' load on it
and real Celery workers; `default` (the test database) must not change at all.
"""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from django.db import connections

from migrations_worker.deploy.lock import DEPLOY_LOCK_KEY
from migrations_worker.models import JobRun
from seed.releases import verify_writes
from tests.conftest import database_url
from tests.deploy.test_rolling_deploy import TUNING, stage, started_releases
from tests.scratch import Database, ScratchDatabase
from tests.workers import Processes, flush_broker, wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])
DECLARED = "the declared targets are default, far, near"


def applied_on(alias: str) -> list[tuple[str, str]]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        return cursor.fetchall()


@pytest.fixture
def far_legacy(test_database_url):
    """A seeded legacy database on the second server, declared as `far` to the subprocesses
    (the test database stays `default`)."""
    name = f"{connections['default'].settings_dict['NAME']}_fardeploy"
    scratch = ScratchDatabase(name, alias="far").create()
    fleet = Database(test_database_url, settings.CELERY_BROKER_URL,
                     SECOND_DATABASE_URL=scratch.url, MW_GATE_INLINE_LIMIT="0",
                     DJANGO_SETTINGS_MODULE="tests.chaos.settings", CHAOS_TUNING=json.dumps(TUNING))
    fleet.migrate_legacy("--database", "far")
    fleet.manage("seed_demo", "--size", "small", "--seed", "11", "--dup-fraction", "0.1",
                 "--database", "far")
    yield fleet, scratch
    scratch.drop()


@pytest.fixture
def far_workers(far_legacy, tmp_path, request):
    fleet, _ = far_legacy
    flush_broker(settings.CELERY_BROKER_URL)
    # Worker processes: they serve the scratch targets under the chaos settings (by env).
    procs = Processes(fleet.env, tmp_path)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


@pytest.fixture
def far_releases(far_legacy, tmp_path):
    """A release's load on the far database: the application of that region, whose own
    database is `far` (its DATABASE_URL)."""
    yield from started_releases(far_legacy[1], tmp_path)


@pytest.mark.slow
def test_a_staged_deploy_of_far_keeps_both_releases_writes_and_leaves_default_untouched(
        far_legacy, far_workers, far_releases):
    fleet, far = far_legacy
    default_applied, default_runs = applied_on("default"), JobRun.objects.count()
    far_workers.worker("w1")
    far_workers.worker("w2")
    far_workers.beat()

    previous = far_releases("previous")
    time.sleep(1.0)
    pre = stage(fleet, "pre", "--database", "far")
    new = far_releases("new")  # the rollout: both releases write to far
    time.sleep(3.0)
    old = previous.stop()
    post = stage(fleet, "post", "--database", "far")
    time.sleep(0.5)
    current = new.stop()

    assert "assets.0013_drop_legacy_text_columns" not in pre
    assert "applying assets.0013_drop_legacy_text_columns... OK" in post
    for traffic in (old, current):
        assert traffic["first_errors"] == [] and traffic["errors"] == 0
    assert old["statements"] > 100 and current["statements"] > 30
    with far.connect() as conn, conn.cursor() as cursor:
        assert verify_writes(cursor, current)["missing"] == []
        # Every text the previous release wrote is archived, but one it replaced itself before
        # the capture trigger (0008) existed: the job archives what an asset holds, not its history.
        kept = verify_writes(cursor, old)
        assert kept["missing"] == []
        assert kept["texts_archived"] + kept["texts_superseded"] == len(old["texts"])
        assert kept["texts_archived"] > 20
        cursor.execute("SELECT job_name, status FROM migrations_worker_jobrun "
                       "WHERE job_name <> 'test_touch_widgets' ORDER BY id")
        assert set(cursor.fetchall()) == {("alerts_uuid", "finished"), ("legacy_columns", "finished"),
                                          ("ticker_dedup", "finished")}
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'assets' "
                       "AND name = '0015_drop_duplicate_guard'")
        assert cursor.fetchone()[0] == 1
    # The project's own database: not one migration recorded, not one run started.
    assert applied_on("default") == default_applied
    assert JobRun.objects.count() == default_runs


@pytest.mark.parametrize("command", [
    ("migrate_online",), ("migrate_online", "--plan"), ("migrate_online", "--check", "--json"),
    ("lint_migrations",),
])
def test_a_database_that_is_no_declared_target_exits_2_naming_the_declared_ones(manage, command):
    result = manage(*command, "--database", "nope")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown database 'nope'" in result.stderr and DECLARED in result.stderr


def test_migrate_refuses_a_database_that_is_no_declared_target_before_touching_any(manage):
    # Django's own argument check: every configured database is a declared target.
    result = manage("migrate", "--database", "nope")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid choice: 'nope' (choose from 'default', 'near', 'far')" in result.stderr


def test_the_plan_and_the_check_say_which_database_they_read(manage):
    plan = manage("migrate_online", "--database", "far", "--plan", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["database"] == "far"
    check = manage("migrate_online", "--database", "near", "--check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout) == {"database": "near", "stage": "all", "migrations": [],
                                        "jobs": []}


def test_a_deploy_holding_the_lock_of_near_blocks_near_only(test_database_url, tmp_path):
    """The deploy lock is per database: while near's is held, a deploy of near waits for it, and
    deploys of far (another server) and default (the same server) go ahead at once."""
    fleet = Database(test_database_url, settings.CELERY_BROKER_URL,
                     SECOND_DATABASE_URL=database_url("far"))
    with connections["near"].cursor() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [DEPLOY_LOCK_KEY])
        near = fleet.popen("migrate_online", "--database", "near", "--lock-wait", "60",
                           log=tmp_path / "near.log")
        wait_until(lambda: "waiting up to 60s" in (tmp_path / "near.log").read_text(), 60,
                   message="the near deploy waits for its lock")
        for other in ("far", "default"):
            result = fleet.manage("migrate_online", "--database", other, "--lock-wait", "0",
                                  check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "migrate_online: done" in result.stdout
        assert near.poll() is None  # still waiting for near's lock
        holder.execute("SELECT pg_advisory_unlock(%s)", [DEPLOY_LOCK_KEY])
    assert near.wait(timeout=60) == 0, (tmp_path / "near.log").read_text()
    assert "migrate_online: done" in (tmp_path / "near.log").read_text()
