"""Faults a fleet meets mid-rollout, each on real databases over real servers with real workers:
bad data in a later wave, a PostgreSQL server stopped, a worker killed mid-batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from migrations_worker.models import Rollout, RolloutStatus, RolloutTarget, TargetStatus
from tests.fleet.conftest import seed_legacy
from tests.fleet.test_rollouts import WAVES, assert_waves_in_order, job_runs
from tests.scratch import ROOT, Database
from tests.workers import free_port, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Alerts whose update the planted trigger refuses: two keys, over the quarantine budget of one.
BAD_ALERTS = (5, 6)
PLANT = f"""
CREATE FUNCTION refuse_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'alert % is locked by the legacy archive', OLD.id; END $$;
CREATE TRIGGER refuse_alert BEFORE UPDATE ON investments_alert FOR EACH ROW
WHEN (OLD.id IN {BAD_ALERTS}) EXECUTE FUNCTION refuse_alert();
"""
FIX = "DROP TRIGGER refuse_alert ON investments_alert; DROP FUNCTION refuse_alert();"


def fingerprint(db: Database) -> tuple:
    """What a database holds: its migrations, its tables, and its alerts and assets, row by row."""
    return (
        db.rows("SELECT app, name FROM django_migrations ORDER BY id"),
        db.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
        db.scalar("SELECT md5(string_agg(a::text, ',' ORDER BY a.id)) FROM investments_alert a"),
        db.scalar("SELECT md5(string_agg(a::text, ',' ORDER BY a.id)) FROM assets_asset a"),
    )


def target(name: str) -> RolloutTarget:
    return RolloutTarget.objects.get(target=name)


def status_of(name: str) -> str | None:
    """The target's status in the rollout, None before the rollout is created."""
    return RolloutTarget.objects.filter(target=name).values_list("status", flat=True).first()


def test_bad_data_in_wave_two_halts_the_rollout_before_wave_three_and_a_retry_after_the_fix_completes_it(
        fleet, fleet_workers):
    fleet_workers.worker("w1")
    fleet_workers.worker("w2")
    fleet_workers.beat()
    t2 = fleet.targets["t2"]
    t2.execute(PLANT)
    untouched = {name: fingerprint(fleet.targets[name]) for name in ("t3", "t4")}

    halted = fleet.fleet("rollout", "--stage", "pre", *WAVES)
    assert halted.returncode == 4, halted.stdout + halted.stderr
    assert "target t2 (wave 2, server pg-second) failed its pre stage" in halted.stderr
    assert "over the budget of 1" in halted.stderr
    # The commands it suggests reach t2, not the control database.
    assert "`backfill quarantine alerts_uuid --database t2` lists them" in halted.stderr
    assert "fleet retry t2 --reason" in halted.stderr and "fleet skip t2" in halted.stderr
    rollout = Rollout.objects.get()
    assert rollout.status == RolloutStatus.HALTED
    assert target("t1").status == TargetStatus.PASSED and target("t2").status == TargetStatus.FAILED
    time.sleep(3)  # beat ticks on: a halted rollout sends nothing
    for name in ("t3", "t4"):
        assert target(name).status == TargetStatus.PENDING
        assert fingerprint(fleet.targets[name]) == untouched[name], f"{name} was touched"
    bad = t2.rows("SELECT key, resolution FROM migrations_worker_quarantinedkey ORDER BY key")
    assert bad == [(5, "open"), (6, "open")]

    t2.execute(FIX)
    retried = fleet.fleet("retry", "t2", "--reason", "legacy archive trigger dropped")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    resumed = fleet.fleet("rollout", "--stage", "pre", *WAVES)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.DONE
    assert target("t2").reason == "legacy archive trigger dropped"
    assert_waves_in_order(rollout)
    assert t2.scalar("SELECT count(*) FROM investments_alert WHERE uuid IS NULL") == 0
    assert set(job_runs(t2).values()) == {1}  # the same run went on: nothing started twice
    events = list(rollout.events.values_list("kind", "target"))
    assert ("halted", "t2") in events and ("retry", "t2") in events


@pytest.fixture
def third_server():
    """A third PostgreSQL server, started (and stopped, and started again) by the project's own
    script on a port of its own, so stopping it disturbs no other test. Its data lives outside
    pytest's temporary directory, which the `postgres` user may not enter."""
    local = Path(tempfile.mkdtemp(prefix="fleet-third-"))
    local.chmod(0o755)
    env = {**os.environ, "LOCAL_SERVICES_DIR": str(local),
           "SECOND_PG_PORT": str(free_port()), "SECOND_PG_DB": "postgres"}
    env.pop("SECOND_DATABASE_URL", None)

    def services(action: str) -> str:
        done = subprocess.run([str(ROOT / "deploy" / "services.sh"), "second", action], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout

    services("up")
    url = services("env").strip().split("=", 1)[1]
    yield url, services
    subprocess.run([str(ROOT / "deploy" / "services.sh"), "second", "down"], env=env,
                   capture_output=True, timeout=120)
    shutil.rmtree(local, ignore_errors=True)


def test_a_server_stopped_mid_rollout_holds_its_targets_naming_it_and_the_rest_go_on(
        fleet, fleet_workers, third_server):
    url, services = third_server
    t5 = Database(url.rsplit("/", 1)[0] + "/fleet_t5", fleet.control.env["TEST_REDIS_URL"],
                  DJANGO_SETTINGS_MODULE="tests.chaos.settings")
    Database(url, "").execute("CREATE DATABASE fleet_t5")
    seed_legacy(t5)
    fleet.add("t5", t5, "pg-third")
    fleet_workers.worker("w1")
    fleet_workers.worker("w2")
    fleet_workers.beat()

    log = fleet.workdir / "rollout.log"
    command = fleet.popen("rollout", "--stage", "pre", "--waves", "1,100%", "--parallel", "4",
                          log=log)
    wait_until(lambda: status_of("t5") in TargetStatus.active(), 240,
               message="wave 2 reaches t5")
    services("down")
    wait_until(lambda: status_of("t5") == TargetStatus.HELD, 120,
               message="t5 is held while its server is down")
    held = target("t5")
    assert "server pg-third" in held.detail
    wait_until(lambda: all(status_of(n) == TargetStatus.PASSED for n in ("t2", "t3", "t4")),
               300, message="the targets of the other servers go on and pass")
    assert Rollout.objects.get().status == RolloutStatus.RUNNING  # held, not halted
    assert command.poll() is None

    services("up")
    assert command.wait(timeout=300) == 0, log.read_text()
    assert target("t5").status == TargetStatus.PASSED
    assert t5.scalar("SELECT count(*) FROM investments_alert WHERE uuid IS NULL") == 0
    assert set(job_runs(t5).values()) == {1}
    assert "held" in log.read_text()


def test_a_worker_killed_mid_batch_on_one_target_leaves_every_row_done_exactly_once(
        fleet, fleet_workers):
    t2 = fleet.targets["t2"]
    fleet.manage("migrate", "engine_app", "0001_initial", "--database", "t2", "-v", "0")
    t2.execute("INSERT INTO engine_app_widget (id, touches, value) "
               "SELECT g, 0, g FROM generate_series(1, 20000) g")
    fleet_workers.worker("w1")
    fleet_workers.worker("w2")
    fleet_workers.beat()

    log = fleet.workdir / "rollout.log"
    command = fleet.popen("rollout", "--stage", "pre", "--waves", "1,100%", log=log)
    wait_until(lambda: (t2.scalar("SELECT to_regclass('migrations_worker_jobbatch') IS NOT NULL")
                        and t2.scalar("SELECT count(*) FROM migrations_worker_jobbatch b JOIN "
                                      "migrations_worker_jobrun r ON r.id = b.run_id WHERE "
                                      "r.job_name = 'test_touch_widgets' AND b.status = "
                                      "'succeeded'") >= 5), 240,
               message="t2's widget job is under way")
    fleet_workers.kill("w1")
    fleet_workers.worker("w3")
    assert command.wait(timeout=300) == 0, log.read_text()
    assert t2.rows("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1") == [(1, 20000)]
    assert Rollout.objects.get().status == RolloutStatus.DONE
