"""The judge calls a mutation killed only when its test failed on an assertion: a crashed
fixture, an exception that is not an assertion, a timeout or a mutant that no longer compiles
each give "pytest exited 1" (or worse) too, and prove nothing. Each case is a real pytest run."""

from __future__ import annotations

import pytest

from tests.mutations import ERROR, KILLED, SURVIVED, Mutation, compiles, judge, run_test

CASES = '''
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("the service is down")

def test_passes():
    assert 1 + 1 == 2

def test_asserts():
    assert [1, 2] == [1, 3]

def test_raises_nothing():
    with pytest.raises(ValueError):
        int("7")

def test_crashes():
    {}["missing"]

def test_fixture_breaks(broken):
    assert True

def test_hangs():
    import time
    time.sleep(30)
'''


def mutation(test: str, file: str = "test_cases.py") -> Mutation:
    return Mutation("case", file, "old", "new", test, "why")


@pytest.fixture
def cases(tmp_path):
    (tmp_path / "test_cases.py").write_text(CASES)
    # A project of its own: not this repository's Django settings.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:django\n")
    return tmp_path


@pytest.mark.parametrize(("test", "verdict", "said"), [
    ("test_passes", SURVIVED, "passed with the mutation"),
    ("test_asserts", KILLED, "assert [1, 2] == [1, 3]"),
    ("test_raises_nothing", KILLED, "DID NOT RAISE"),
    ("test_crashes", ERROR, "not an assertion: KeyError"),
    ("test_fixture_breaks", ERROR, "a fixture failed"),
])
def test_a_mutant_is_killed_only_by_a_failed_assertion_of_its_test(cases, tmp_path, test, verdict,
                                                                   said):
    run = run_test(cases, f"test_cases.py::{test}", 120, tmp_path / f"{test}.log")
    outcome = judge(mutation(test), run, 1.0)
    assert outcome.result == verdict, outcome.detail
    assert said in outcome.detail


def test_a_test_that_runs_out_of_time_is_an_error_not_a_kill(cases, tmp_path):
    run = run_test(cases, "test_cases.py::test_hangs", 3, tmp_path / "hangs.log")
    assert run.code is None
    outcome = judge(mutation("test_hangs"), run, 3.0)
    assert (outcome.result, outcome.detail.splitlines()[0]) == (ERROR, "timed out:")


def test_a_mutant_that_does_not_compile_is_named_before_its_test_runs(tmp_path):
    (tmp_path / "module.py").write_text("def f(:\n    pass\n")
    (tmp_path / "notes.md").write_text("def f(:\n")
    assert "does not compile" in compiles(tmp_path, mutation("t", "module.py"))
    assert compiles(tmp_path, mutation("t", "notes.md")) == ""  # not Python: nothing to compile


def test_runs_at_once_never_share_a_slot_and_each_names_its_own_databases():
    import threading
    import time

    from tests.mutations.__main__ import Slots

    busy: set[str] = set()
    clashes, seen = [], []
    guard = threading.Lock()

    def work(env: dict[str, str]) -> str:
        slot = env["PYTEST_XDIST_WORKER"]
        with guard:
            clashes.extend([slot] if slot in busy else [])
            busy.add(slot)
            seen.append(slot)
        time.sleep(0.02)
        with guard:
            busy.discard(slot)
        return slot

    slots = Slots(3)
    results = slots.each(lambda number, item: (item, slots.run(work)), list(range(12)))
    assert clashes == []
    assert [item for item, _ in results] == list(range(12))  # in the items' order
    assert set(seen) == {"gw0", "gw1", "gw2"}
    assert Slots(1).run(lambda env: env) == {}  # one at a time: the caller's own databases


def test_a_test_the_suite_runs_alone_runs_with_every_slot_taken():
    import threading
    import time

    from tests.mutations.__main__ import Slots, runs_alone

    running, overlaps = [0], []
    guard = threading.Lock()

    def work(alone: bool):
        def body(env: dict[str, str]) -> None:
            with guard:
                running[0] += 1
                overlaps.append((alone, running[0]))
            time.sleep(0.02)
            with guard:
                running[0] -= 1
        return body

    slots = Slots(3)
    kinds = [index % 4 == 0 for index in range(12)]  # every fourth runs alone
    slots.each(lambda number, alone: slots.run(work(alone), alone=alone), kinds)
    assert [count for alone, count in overlaps if alone] == [1, 1, 1]
    assert runs_alone("tests/deploy/test_rolling_deploy.py::test_both_releases_write_through")
    assert not runs_alone("tests/engine/test_claim_fence.py::test_a_worker_stalled")
