"""The timing table a lock-safe DDL step asks for its lock by (operations/lock_retry.py), without a
database: where it comes from, what it escalates to, and what it refuses."""

import random

import pytest
from django.db import migrations, models

from migrations_worker.exceptions import InvalidLockRetry
from migrations_worker.operations import CreateIndexConcurrently, Safely, SafeSQL
from migrations_worker.operations.lock_retry import DEFAULTS, Attempt, LockRetry


@pytest.fixture
def site(settings):
    def set_site(**ddl):
        settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "DDL": ddl}
    set_site()
    return set_site


def test_by_default_requests_start_at_tens_of_milliseconds_and_grow_to_a_cap(site):
    table = LockRetry.resolve().timings
    locks = [lock for lock, _ in table]
    sleeps = [sleep for _, sleep in table]
    assert len(table) == DEFAULTS["attempts"]
    assert 10 <= locks[0] < 100  # the application waits tens of milliseconds behind one
    assert locks == sorted(locks) and locks[0] < locks[-1] == DEFAULTS["lock_timeout_ms"][1]
    assert sleeps == sorted(sleeps) and sleeps[-1] == DEFAULTS["sleep_ms"][1]
    # the request stops growing early; the back-off goes on growing after it
    assert locks.index(max(locks)) < sleeps.index(max(sleeps))


def test_the_site_sets_the_table_and_an_operation_adjusts_it_over_the_site(site):
    site(lock_timeout_ms=[40, 400], attempts=5)
    assert [lock for lock, _ in LockRetry.resolve().timings] == [40, 60, 90, 135, 202]
    adjusted = LockRetry.resolve({"attempts": 2, "concurrent_lock_timeout_ms": 5_000})
    assert [lock for lock, _ in adjusted.timings] == [40, 60]  # the site's escalation, 2 rows
    assert adjusted.concurrent_lock_timeout_ms == 5_000


def test_an_explicit_table_replaces_the_escalation_and_an_escalation_above_replaces_a_table(site):
    site(timings=[[10, 0], [500, 1_000]])
    assert LockRetry.resolve().timings == ((10, 0), (500, 1_000))
    assert len(LockRetry.resolve({"attempts": 3}).timings) == 3  # escalated again, 3 rows


@pytest.mark.parametrize("bad", [
    {"lock_timout_ms": [20, 100]},  # a typo is not ignored
    {"lock_timeout_ms": [200, 100]},  # first above the cap
    {"lock_timeout_ms": [0, 100]},  # 0 would mean "wait for ever"
    {"lock_timeout_ms": 20},
    {"sleep_ms": [-1, 10]},
    {"attempts": 0},
    {"attempts": True},
    {"timings": []},
    {"timings": [[20]]},
    {"timings": [[20, "1s"]]},
    {"statement_timeout_ms": 2**31},
])
def test_a_bad_table_is_refused_saying_what_is_wrong(site, bad):
    with pytest.raises(InvalidLockRetry):
        LockRetry.resolve(bad)


def test_a_bad_table_fails_when_the_migration_is_loaded_not_when_it_runs(site):
    with pytest.raises(InvalidLockRetry):
        SafeSQL([["SELECT 1"]], lock_retry={"attempts": -1})


def test_a_back_off_is_jittered_between_half_and_all_of_its_row():
    attempt = Attempt(number=3, lock_timeout_ms=45, sleep_ms=80)
    rng = random.Random(7)
    sleeps = [attempt.jittered_sleep_ms(rng) for _ in range(200)]
    assert all(40 <= s <= 80 for s in sleeps)
    assert max(sleeps) - min(sleeps) > 20  # not one fixed value


def test_only_a_concurrent_build_waits_longer_and_only_long_steps_lift_statement_timeout(site):
    table = LockRetry.resolve({"timings": [[25, 0]], "statement_timeout_ms": 9_000})
    first = next(table.attempts())
    assert table.limits(first, long_running=False, concurrent=False) == {
        "lock_timeout_ms": 25, "statement_timeout_ms": 9_000}
    assert table.limits(first, long_running=True, concurrent=False) == {
        "lock_timeout_ms": 25, "statement_timeout_ms": None}
    assert table.limits(first, long_running=True, concurrent=True) == {
        "lock_timeout_ms": DEFAULTS["concurrent_lock_timeout_ms"], "statement_timeout_ms": None}


def test_every_lock_safe_operation_writes_its_own_table_into_the_migration_file_and_no_default():
    own = {"lock_timeout_ms": [50, 500]}
    operations = [
        (SafeSQL([["SELECT 1"]], lock_retry=own), SafeSQL([["SELECT 1"]])),
        (CreateIndexConcurrently("i", "t", ["c"], lock_retry=own), CreateIndexConcurrently("i", "t", ["c"])),
        (Safely(migrations.AddField("m", "f", models.IntegerField(null=True)), lock_retry=own),
         Safely(migrations.AddField("m", "f", models.IntegerField(null=True)))),
    ]
    for with_own, without in operations:
        assert with_own.deconstruct()[2]["lock_retry"] == own
        assert "lock_retry" not in without.deconstruct()[2]
