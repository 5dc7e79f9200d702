"""A deploy stage across a fleet: waves, the canary alone first, each wave only after the one
before passed and verified, and the rollout surviving the process that started it.

Four seeded legacy databases over two PostgreSQL servers (tests/fleet/conftest.py), two real
Celery workers and beat, `manage.py fleet` in a subprocess as an operator runs it.
"""

from __future__ import annotations

import json
import signal

import pytest

from migrations_worker.models import Rollout, RolloutEvent, RolloutStatus, TargetStatus
from tests.workers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WAVES = ("--waves", "1,2,100%")  # t1 the canary, then t2, then t3 and t4


def job_runs(db) -> dict[str, int]:
    """How many runs each job has had on a target: one each when nothing was done twice."""
    return dict(db.rows("SELECT job_name, count(*) FROM migrations_worker_jobrun GROUP BY 1"))


def pending_check(fleet, name: str, *stage: str) -> int:
    return fleet.manage("migrate_online", "--check", *stage, "--database", name,
                        check=False).returncode


def assert_waves_in_order(rollout: Rollout) -> None:
    """No target of a wave started before every target of the wave before it had passed."""
    targets = list(rollout.targets.all())
    for wave in range(2, max(t.wave for t in targets) + 1):
        before = [t.finished_at for t in targets if t.wave == wave - 1]
        started = [t.started_at for t in targets if t.wave == wave]
        assert min(started) >= max(before), f"wave {wave} started before wave {wave - 1} passed"


def test_plan_shows_the_waves_and_what_each_target_would_do(fleet):
    result = fleet.fleet("plan", "--stage", "pre", *WAVES, "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [[t["target"] for t in w["targets"]] for w in plan["waves"]] == [["t1"], ["t2"], ["t3", "t4"]]
    assert plan["waves"][0]["canary"] is True
    for wave in plan["waves"]:
        for target in wave["targets"]:
            assert target["error"] == ""
            assert "investments.0005_alert_uuid_expand" in target["migrations"]
            assert "alerts_uuid" in target["jobs"]
            assert target["seconds"] is not None
    assert {t["server"] for w in plan["waves"] for t in w["targets"]} == {"pg-first", "pg-second"}
    # Each server's share of the writes: its two targets' WAL and growth, added up on it.
    targets = {t["target"]: t for w in plan["waves"] for t in w["targets"]}
    rooms = {room["server"]: room for room in plan["servers"]}
    assert {server: sorted(room["targets"]) for server, room in rooms.items()} == {
        "pg-first": ["t1", "t3"], "pg-second": ["t2", "t4"]}
    for server, (one, other) in (("pg-first", ("t1", "t3")), ("pg-second", ("t2", "t4"))):
        assert targets[one]["wal_bytes"] > 0
        assert rooms[server]["wal_bytes"] == targets[one]["wal_bytes"] + targets[other]["wal_bytes"]
        assert rooms[server]["growth_bytes"] == (targets[one]["growth_bytes"]
                                                 + targets[other]["growth_bytes"])
    assert rooms["pg-first"]["settings"]["max_wal_size"] > 0

    text = fleet.fleet("plan", "--stage", "pre", *WAVES).stdout
    assert "room per server (its targets' data jobs, at the bytes a row measured):" in text
    assert "  pg-first: WAL ~" in text and "for 2 target(s); max_wal_size" in text
    assert "  pg-second: WAL ~" in text


def test_a_staged_deploy_rolls_out_wave_by_wave_and_each_target_ends_fully_migrated(
        fleet, fleet_workers):
    fleet_workers.worker("w1")
    fleet_workers.worker("w2")
    fleet_workers.beat()

    pre = fleet.fleet("rollout", "--stage", "pre", *WAVES, "--parallel", "2")
    assert pre.returncode == 0, pre.stdout + pre.stderr
    assert "rollout #" in pre.stdout and "done" in pre.stdout
    rollout = Rollout.objects.get()
    assert rollout.status == RolloutStatus.DONE
    assert set(rollout.targets.values_list("status", flat=True)) == {TargetStatus.PASSED}
    assert_waves_in_order(rollout)
    for name, db in fleet.targets.items():
        assert pending_check(fleet, name, "--stage", "pre") == 0, name
        assert pending_check(fleet, name, "--stage", "post") == 8, name  # the contract is left
        assert set(job_runs(db).values()) == {1}, name

    # The control tables lost: a new rollout of the same stage rebuilds the state from the
    # targets' own tables, each passing at its first step with nothing done again.
    Rollout.objects.all().delete()
    rebuilt = fleet.fleet("rollout", "--stage", "pre", *WAVES, "--parallel", "2")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    rollout = Rollout.objects.get()
    assert {(status, tuple(applied), steps) for status, applied, steps
            in rollout.targets.values_list("status", "applied", "steps")} == {("passed", (), 1)}
    for name, db in fleet.targets.items():
        assert set(job_runs(db).values()) == {1}, name

    post = fleet.fleet("rollout", "--stage", "post", *WAVES, "--parallel", "2")
    assert post.returncode == 0, post.stdout + post.stderr
    second = Rollout.objects.exclude(pk=rollout.pk).get()
    assert second.status == RolloutStatus.DONE
    assert_waves_in_order(second)
    for name, db in fleet.targets.items():
        assert pending_check(fleet, name) == 0, name  # nothing of any stage is pending
        assert set(job_runs(db).values()) == {1}, name
        assert db.scalar("SELECT count(*) FROM investments_alert WHERE uuid IS NULL") == 0
        duplicates = db.scalar("SELECT count(*) FROM (SELECT 1 FROM assets_asset GROUP BY "
                               "ticker, exchange_id HAVING count(*) > 1) d")
        assert duplicates == 0, name
    status = json.loads(fleet.fleet("status", "--json").stdout)
    assert status["rollout"]["id"] == second.pk and status["rollout"]["status"] == "done"
    kinds = [e["kind"] for e in status["events"]]
    assert kinds[0] == "started" and kinds[-1] == "done"
    assert kinds.count("wave") == 3


def test_the_rollout_survives_its_command_killed_between_waves_and_a_rerun_resumes_it(
        fleet, fleet_workers):
    """Without beat, only the command and the workers advance it; the re-run picks it up."""
    fleet_workers.worker("w1")
    fleet_workers.worker("w2")
    log = fleet.workdir / "rollout.log"
    command = fleet.popen("rollout", "--stage", "pre", *WAVES, log=log)
    wait_until(lambda: Rollout.objects.filter(targets__target="t1",
                                              targets__status=TargetStatus.PASSED).exists(),
               240, message="the canary passes")
    command.send_signal(signal.SIGKILL)
    command.wait(timeout=10)

    again = fleet.fleet("rollout", "--stage", "pre", *WAVES)
    assert again.returncode == 0, again.stdout + again.stderr
    rollout = Rollout.objects.get()
    assert f"resuming rollout #{rollout.pk}" in again.stdout
    assert rollout.status == RolloutStatus.DONE
    assert_waves_in_order(rollout)
    started = list(RolloutEvent.objects.filter(rollout=rollout, kind="started")
                   .exclude(target="").values_list("target", flat=True))
    assert sorted(started) == ["t1", "t2", "t3", "t4"]  # each target started once
    for name, db in fleet.targets.items():
        assert set(job_runs(db).values()) == {1}, name
        applied = db.rows("SELECT app, name, count(*) FROM django_migrations GROUP BY 1, 2 "
                          "HAVING count(*) > 1")
        assert applied == [], name


def test_while_a_rollout_is_open_another_is_refused_bad_input_exits_2_and_a_pause_holds_it_until_resumed(
        fleet, fleet_workers):
    fleet_workers.worker("w1")
    started = fleet.fleet("rollout", "--stage", "pre", *WAVES, "--detach")
    assert started.returncode == 0, started.stderr
    other = fleet.fleet("rollout", "--stage", "post")
    assert other.returncode == 3
    assert "is not over" in other.stderr and "fleet status" in other.stderr
    for bad, said in ((("rollout", "--stage", "pre", "--waves", "0,100%"), "at least one"),
                      (("rollout", "--stage", "pre", "--waves", "1,abc"), "neither a count"),
                      (("plan", "--stage", "pre", "--select", "nolabel"), "label=value"),
                      (("skip", "t9", "--reason", "gone"), "not a target of rollout"),
                      (("retry", "t1", "--reason", " "), "give a --reason")):
        result = fleet.fleet(*bad)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert said in result.stderr, (bad, result.stderr)
    nothing = fleet.manage("fleet", "plan", "--stage", "pre", "--select", "fleet=nope", check=False)
    assert nothing.returncode == 2 and "no target has the labels fleet=nope" in nothing.stderr
    paused = fleet.fleet("pause", "--reason", "a look first")
    assert paused.returncode == 0 and "paused" in paused.stdout
    follow = fleet.fleet("rollout", "--stage", "pre")
    assert follow.returncode == 8 and "fleet resume" in follow.stderr
    resumed = fleet.fleet("resume", "--reason", "looked")
    assert resumed.returncode == 0 and "now running" in resumed.stdout
    done = fleet.fleet("rollout", "--stage", "pre")
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = list(Rollout.objects.get().events.values_list("kind", "message"))
    assert ("paused", "a look first") in kinds and ("resumed", "looked") in kinds


def test_a_post_rollout_before_the_pre_stage_halts_at_the_canary_and_touches_no_other_target(
        fleet, fleet_workers):
    fleet_workers.worker("w1")
    fleet_workers.beat()
    before = {name: db.rows("SELECT app, name FROM django_migrations ORDER BY id")
              for name, db in fleet.targets.items()}
    post = fleet.fleet("rollout", "--stage", "post", *WAVES)
    assert post.returncode == 4, post.stdout + post.stderr
    assert "target t1 (wave 1, server pg-first) failed its post stage" in post.stderr
    assert "pre-deploy migration(s) are not applied yet" in post.stderr
    rollout = Rollout.objects.get()
    assert dict(rollout.targets.values_list("target", "status")) == {
        "t1": TargetStatus.FAILED, "t2": TargetStatus.PENDING, "t3": TargetStatus.PENDING,
        "t4": TargetStatus.PENDING}
    for name, db in fleet.targets.items():
        after = db.rows("SELECT app, name FROM django_migrations ORDER BY id")
        assert after == before[name], f"{name} was migrated"
