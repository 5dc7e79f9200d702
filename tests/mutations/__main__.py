"""python -m tests.mutations [NAME ...] | --all: run the mutation check (see
tests/mutations/__init__.py). `--all` runs the whole catalogue and records its table in
docs/mutations.md (the README quotes that run)."""

from __future__ import annotations

import argparse
import datetime
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import SERIAL
from tests.mutations import (
    ERROR,
    KILLED,
    ROOT,
    Mutation,
    MutationDoesNotApply,
    Outcome,
    compiles,
    copy_repository,
    judge,
    run_test,
)
from tests.mutations.catalogue import MUTATIONS, is_scanner
from tests.mutations.record import RECORD, current_commit, write_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutations", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="a mutation's name, or the start of names (e.g. 'sql:'); default: all")
    parser.add_argument("--all", action="store_true",
                        help=f"run every entry and record the table in {RECORD.relative_to(ROOT)}")
    parser.add_argument("--list", action="store_true", help="list the catalogue and stop")
    parser.add_argument("--keep", action="store_true", help="keep the copies and the test logs")
    parser.add_argument("--no-control", action="store_true",
                        help="skip running each test once without its mutation")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test run (900)")
    parser.add_argument("--jobs", type=int, default=1, choices=range(1, MAX_JOBS + 1),
                        metavar=f"1-{MAX_JOBS}",
                        help="test runs at once, each with databases of its own (1)")
    args = parser.parse_args(argv)
    if args.all and (args.names or args.no_control):
        parser.error("--all runs the whole catalogue with its controls: no names, no --no-control")

    chosen: list[Mutation] = []
    for name in args.names:
        matching = [m for m in MUTATIONS if m.name == name] or [
            m for m in MUTATIONS if m.name.startswith(name)]
        if not matching:
            parser.error(f"no mutation is named {name!r} or starts with it; --list shows them")
        chosen += [m for m in matching if m not in chosen]
    chosen = chosen or list(MUTATIONS)
    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.file}  ->  {m.test}\n    {m.why}")
        return 0

    work = Path(tempfile.mkdtemp(prefix="mutations-"))
    outcomes: list[Outcome] = []
    try:
        commit = current_commit()
        pristine = copy_repository(work / "pristine")
        at_once = Slots(args.jobs)
        failing_controls: dict[str, str] = {}
        if not args.no_control:
            tests = list(dict.fromkeys(m.test for m in chosen))

            def control(index: int, test: str) -> None:
                ran = at_once.run(lambda env: run_test(pristine, test, args.timeout,
                                                       work / f"control-{index}.log", env),
                                  alone=runs_alone(test))
                print(f"[control] {test}: {'passes' if ran.code == 0 else 'FAILS'}", flush=True)
                if ran.code != 0:
                    failing_controls[test] = ran.output

            at_once.each(control, tests)

        def mutant(number: int, mutation: Mutation) -> Outcome:
            outcome = at_once.run(lambda env: run_one(mutation, number, pristine, work, args.timeout,
                                                      failing_controls, env),
                                  alone=runs_alone(mutation.test))
            print(f"[{number}/{len(chosen)}] {mutation.name}: {outcome.result}", flush=True)
            return outcome

        outcomes = at_once.each(mutant, chosen)
    finally:
        if args.keep:
            print(f"copies and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(outcomes)
    if args.all:
        write_record(outcomes, datetime.date.today(), commit)
        print(f"recorded in {RECORD.relative_to(ROOT)}")
    return 0 if all(o.result == KILLED for o in outcomes) else 1


# The test settings give each pytest-xdist worker its own databases and a block of Redis
# databases (config/settings/test.py); a slot here is one of those workers, so this many.
MAX_JOBS = 5


class Slots:
    """At most `jobs` test runs at once, each as a worker slot of its own: the environment that
    names its test databases and Redis databases apart from the others'."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.taking = threading.Lock()
        self.free: queue.Queue[int] = queue.Queue()
        for slot in range(jobs):
            self.free.put(slot)

    def run(self, work: Callable[[dict[str, str]], object], alone: bool = False):
        """`work(env)` in a free slot; `alone`: with every slot taken, so nothing else runs (a
        test that measures latencies and lock waits, as the suite runs it: tests/conftest.py's
        SERIAL)."""
        with self.taking:  # one taker at a time: two `alone` runs never hold half the slots each
            taken = [self.free.get() for _ in range(self.jobs if alone else 1)]
        try:
            return work({"PYTEST_XDIST_WORKER": f"gw{taken[0]}"} if self.jobs > 1 else {})
        finally:
            for slot in taken:
                self.free.put(slot)

    def each(self, work: Callable, items: list) -> list:
        """`work(number, item)` for every item, `jobs` at a time; results in the items' order."""
        with ThreadPoolExecutor(self.jobs) as pool:
            return list(pool.map(work, range(1, len(items) + 1), items))


def runs_alone(test: str) -> bool:
    """A test the suite runs alone (SERIAL in tests/conftest.py) runs alone here too."""
    return any(test.startswith(prefix) for prefix in SERIAL)


def run_one(mutation: Mutation, number: int, pristine: Path, work: Path, timeout: float,
            failing_controls: dict[str, str], env: dict[str, str]) -> Outcome:
    if mutation.test in failing_controls:
        return Outcome(mutation, ERROR, "its test fails without the mutation:\n"
                       + failing_controls[mutation.test])
    copy = work / f"mutant-{number}"
    shutil.copytree(pristine, copy, symlinks=True)
    try:
        mutation.apply(copy)
    except MutationDoesNotApply as exc:
        return Outcome(mutation, ERROR, str(exc))
    broken = compiles(copy, mutation)
    if broken:
        shutil.rmtree(copy, ignore_errors=True)
        return Outcome(mutation, ERROR, broken)
    started = time.monotonic()
    run = run_test(copy, mutation.test, timeout, work / f"mutant-{number}.log", env)
    shutil.rmtree(copy, ignore_errors=True)
    return judge(mutation, run, time.monotonic() - started)


def report(outcomes: list[Outcome]) -> None:
    width = max([len(o.mutation.name) for o in outcomes] + [8])
    print(f"\n{'mutation':<{width}}  {'result':<8}  {'time':>5}  test")
    for o in outcomes:
        print(f"{o.mutation.name:<{width}}  {o.result:<8}  {o.seconds:>4.0f}s  {o.mutation.test}")
    for o in outcomes:
        if o.result != KILLED:
            print(f"\n--- {o.mutation.name}: {o.result}\n{o.detail}")
    for label, group in (("product", [o for o in outcomes if not is_scanner(o.mutation)]),
                         ("scanners", [o for o in outcomes if is_scanner(o.mutation)])):
        if group:
            killed = sum(o.result == KILLED for o in group)
            print(f"{label}: {killed} of {len(group)} killed")


if __name__ == "__main__":
    sys.exit(main())
