"""The lock-wait check the deploy tests hold the README's bound with (tests/lock_waits.py) fails
when the bound is broken: an application session queued behind an ACCESS EXCLUSIVE lock held for
half a second is named with the whole of its wait, told apart from another application's session
by its name, while a lock held for less than the bound leaves nothing to find."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.lock_waits import (
    BOUND_MS,
    ServerLog,
    assert_no_application_waited,
    described,
    lock_waits,
    read_behind_an_exclusive_lock,
)
from tests.scratch import ScratchDatabase

APPLICATION = "lock-wait-reader"


@pytest.fixture
def scratch():
    db = ScratchDatabase(f"{connection.settings_dict['TEST']['NAME']}_lockwait").create()
    db.execute("CREATE TABLE quotes (id int PRIMARY KEY, price numeric)")
    db.execute("INSERT INTO quotes VALUES (1, 10)")
    yield db
    db.drop()


def test_a_read_queued_half_a_second_behind_an_access_exclusive_lock_is_found_with_its_wait(scratch):
    log = ServerLog(scratch.url)
    durations = read_behind_an_exclusive_lock(scratch.url, "quotes", 0.5, APPLICATION, "someone-else")

    assert min(durations) > 0.4  # both really waited
    waits = log.waits(database=scratch.name, applications={APPLICATION})
    assert {w.application for w in waits} == {APPLICATION}
    events = {w.event: w for w in waits}
    assert set(events) == {"still waiting for", "acquired"}, described(waits)
    assert BOUND_MS <= events["still waiting for"].milliseconds < 400
    assert 400 <= events["acquired"].milliseconds < 5_000
    assert events["acquired"].lock.startswith("AccessShareLock on relation")
    assert "Process holding the lock" in events["still waiting for"].detail
    assert 'SELECT count(*) FROM "quotes"' in events["still waiting for"].statement
    assert f"{APPLICATION} (pid {events['acquired'].pid}) acquired" in described(waits)
    # The other session waited as long, and is told apart by its application_name.
    other = log.waits(database=scratch.name, applications={"someone-else"})
    assert {w.event for w in other} == {"still waiting for", "acquired"}
    assert {w.pid for w in other}.isdisjoint(w.pid for w in waits)
    # The deploy tests' assertion, on this bad case: it fails, naming the session and its wait.
    with pytest.raises(AssertionError, match=rf"{APPLICATION} \(pid \d+\) acquired .* after \d+ ms"):
        assert_no_application_waited(log, database=scratch.name, applications={APPLICATION})


def test_a_wait_shorter_than_the_bound_leaves_no_line(scratch):
    log = ServerLog(scratch.url)
    durations = read_behind_an_exclusive_lock(scratch.url, "quotes", 0.02, APPLICATION)

    assert durations and durations[0] < BOUND_MS / 1000
    assert log.waits(database=scratch.name, applications={APPLICATION}) == []
    assert_no_application_waited(log, database=scratch.name, applications={APPLICATION})


def test_a_multi_line_statement_and_another_sessions_lines_between_are_read_apart():
    text = (
        "2026-12-06 12:00:00.100 UTC [11] [release-new] [shop] LOG:  process 11 still waiting "
        "for RowExclusiveLock on relation 16390 of database 16384 after 100.081 ms at character 8\n"
        "2026-12-06 12:00:00.100 UTC [11] [release-new] [shop] DETAIL:  Process holding the lock: "
        "12. Wait queue: 11.\n"
        "2026-12-06 12:00:00.100 UTC [11] [release-new] [shop] STATEMENT:  UPDATE assets_asset\n"
        "\t   SET name = 'x'\n"
        "2026-12-06 12:00:00.150 UTC [13] LOG:  checkpoint starting: time\n"
        "waiting for server to shut down.... done\n"
        "2026-12-06 12:00:00.412 UTC [11] [release-new] [shop] LOG:  process 11 acquired "
        "RowExclusiveLock on relation 16390 of database 16384 after 412.5 ms\n"
        "2026-12-06 12:00:00.412 UTC [11] [release-new] [shop] STATEMENT:  UPDATE assets_asset\n"
        "\t   SET name = 'x'\n"
    )
    first, second = lock_waits(text)
    assert (first.pid, first.application, first.database, first.event, first.milliseconds) == (
        11, "release-new", "shop", "still waiting for", 100.081)
    assert first.detail == "Process holding the lock: 12. Wait queue: 11."
    assert first.statement == second.statement == "UPDATE assets_asset SET name = 'x'"
    assert (second.event, second.milliseconds, second.detail) == ("acquired", 412.5, "")
