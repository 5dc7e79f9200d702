"""The lock-wait check the deploy tests hold the README's bound with (tests/lock_waits.py) fails
when the bound is broken: an application session queued behind an ACCESS EXCLUSIVE lock held for
half a second is named with the whole of its wait and the lock's holder, told apart from another
application's session by its name, while a lock held for less than the bound leaves nothing to
find."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.lock_waits import (
    BOUND_MS,
    ServerLog,
    assert_no_application_waited,
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
    (wait,) = log.waits(database=scratch.name, applications={APPLICATION})
    assert (wait.application, wait.database, wait.ended) == (APPLICATION, scratch.name, "acquired")
    assert 400 <= wait.milliseconds < 5_000
    assert wait.lock.startswith("AccessShareLock on relation")
    assert len(wait.holders) == 1  # by pid: the holder logged nothing to name it by
    assert 'SELECT count(*) FROM "quotes"' in wait.statement
    # The other session waited as long, and is told apart by its application_name.
    (other,) = log.waits(database=scratch.name, applications={"someone-else"})
    assert other.pid != wait.pid and other.milliseconds >= 400

    # The deploy tests' assertion, on this bad case: it fails, naming the session, its wait and
    # the holder's pid.
    holder = next(iter(wait.holders))
    with pytest.raises(AssertionError, match=rf"{APPLICATION} \(pid {wait.pid}\) waited \d+ ms and "
                                             rf"acquired AccessShareLock .* behind \? \(pid {holder}\)"):
        assert_no_application_waited(log, database=scratch.name, applications={APPLICATION})


def test_a_wait_shorter_than_the_bound_leaves_no_line(scratch):
    log = ServerLog(scratch.url)
    durations = read_behind_an_exclusive_lock(scratch.url, "quotes", 0.02, APPLICATION)

    assert durations and durations[0] < BOUND_MS / 1000
    assert log.waits(database=scratch.name, applications={APPLICATION}) == []
    assert_no_application_waited(log, database=scratch.name, applications={APPLICATION})


def test_a_waits_lines_are_read_as_one_wait_with_its_holder_named_and_its_statement_whole():
    prefix = "2026-12-06 12:00:00.100 UTC [{}] [{}] [shop] {}:  "
    waiting, holder = prefix.format(11, "new-release", "{}"), prefix.format(12, "mw-worker", "{}")
    text = "\n".join([
        holder.format("LOG") + "connection authorized: user=postgres database=shop "
                               "application_name=mw-worker",
        waiting.format("LOG") + "process 11 still waiting for ShareLock on transaction 7 after "
                                "100.081 ms at character 8",
        waiting.format("DETAIL") + "Process holding the lock: 12. Wait queue: 11.",
        waiting.format("CONTEXT") + 'while locking tuple (16,39) in relation "assets_asset"',
        waiting.format("STATEMENT") + "UPDATE assets_asset",
        "\t   SET name = 'x'",
        "2026-12-06 12:00:00.150 UTC [13] LOG:  checkpoint starting: time",
        "waiting for server to shut down.... done",
        waiting.format("LOG") + "process 11 acquired ShareLock on transaction 7 after 412.5 ms",
        waiting.format("STATEMENT") + "UPDATE assets_asset",
        "\t   SET name = 'x'",
        waiting.format("LOG") + "process 11 still waiting for ShareLock on transaction 9 after "
                                "100.2 ms",
        waiting.format("DETAIL") + "Processes holding the lock: 14, 15. Wait queue: 11.",
    ])
    first, second = lock_waits(text)
    assert (first.pid, first.application, first.database, first.lock, first.milliseconds) == (
        11, "new-release", "shop", "ShareLock on transaction 7", 412.5)
    assert (first.ended, first.holders) == ("acquired", {12: "mw-worker"})
    assert first.statement == "UPDATE assets_asset SET name = 'x'"
    assert (second.lock, second.ended, second.holders) == (
        "ShareLock on transaction 9", "", {14: "?", 15: "?"})
