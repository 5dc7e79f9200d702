"""The mutation check: the code broken on purpose, one way at a time, in a copy of the
repository, and the one test that must catch it run there.

A `Mutation` is an exact text replacement in one tracked file (its `old` text must occur there
exactly once) and the pytest node id of the test that must then fail. The catalogue is
`MUTATIONS` in tests/mutations/catalogue.py; tests/mutations/test_catalogue.py checks that every
entry still applies and names a test that exists.

    python -m tests.mutations [NAME ...] [--list] [--keep] [--no-control] [--timeout SECONDS]

copies the repository's tracked files (`git ls-files`, as they are in the working tree) to a
temporary directory, runs each named test there once unchanged (the control: a test that fails
anyway proves nothing), then, for each mutation, applies it to a fresh copy and runs its test
with the test services of the environment (DATABASE_URL, TEST_DATABASE_NAME, TEST_REDIS_URL are
passed through). It exits 0 only if every mutation was killed.

The judge is strict, because "pytest exited 1" is also what a crashed fixture, a dead service or a
mutant that no longer compiles give: a mutation is *killed* only when its mutated file still
compiles, the test passed unchanged in the same run (the control), and the named test then
failed on an assertion (`AssertionError`, or pytest's own `Failed`: `pytest.raises` that did not
raise, `pytest.fail`), read from pytest's JUnit XML, with no error in a fixture. Passing is
*survived*; anything else (an exception that is not an assertion, a setup error, a timeout) is
an *error*, with what happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KILLED, SURVIVED, ERROR = "killed", "survived", "error"


@dataclass(frozen=True)
class Mutation:
    name: str  # short, unique: what is broken
    file: str  # a tracked file, relative to the repository root
    old: str  # exact text, found exactly once in the file
    new: str  # what it becomes
    test: str  # the pytest node id that must fail with the mutation in place
    why: str  # what the breakage stands for (the variant, the bug it would let through)

    def apply(self, root: Path) -> None:
        path = root / self.file
        text = path.read_text()
        found = text.count(self.old)
        if found != 1:
            raise MutationDoesNotApply(f"{self.name}: its old text occurs {found} times in {self.file}")
        path.write_text(text.replace(self.old, self.new))


class MutationDoesNotApply(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    result: str  # KILLED, SURVIVED or ERROR
    detail: str = ""
    seconds: float = 0.0


def tracked_files(root: Path = ROOT) -> list[str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    return [name for name in names if name and (root / name).is_file()]


def copy_repository(target: Path, root: Path = ROOT) -> Path:
    """The tracked files of `root` under `target`, in a git repository of their own (tests list
    the tracked files with `git ls-files`)."""
    for name in tracked_files(root):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name, follow_symlinks=False)
    git = ["git", "-c", "user.name=mutations", "-c", "user.email=mutations@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    return target


def compiles(root: Path, mutation: Mutation) -> str:
    """"" when the mutated file still compiles (or is not Python), else the compiler's message:
    a mutant that does not compile fails its test by an ImportError, which proves nothing."""
    if not mutation.file.endswith(".py"):
        return ""
    path = root / mutation.file
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as exc:
        return f"the mutant does not compile: {exc}"
    return ""


@dataclass(frozen=True)
class TestRun:
    """One pytest run of a node id: how it ended and what JUnit XML says of its cases."""

    code: int | None  # pytest's exit code; None: timed out
    output: str  # the end of its output
    failures: tuple[str, ...] = ()  # each failed case's message (its exception and text)
    errors: tuple[str, ...] = ()  # each case's error outside the test body (fixtures)


def run_test(copy: Path, test: str, timeout: float, log: Path,
             env: dict[str, str] | None = None) -> TestRun:
    """pytest on one node id inside `copy`, with its outcome per case read from JUnit XML;
    `env` on top of this process's environment (a slot's own databases)."""
    inherited = {k: v for k, v in os.environ.items() if k != "MW_TEST_WORKER"}
    env = {**inherited, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    report = log.with_suffix(".xml")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 f"--junitxml={report}", test], cwd=copy, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    failures, errors = read_junit(report)
    return TestRun(code, log.read_text(errors="replace")[-2000:], failures, errors)


def read_junit(report: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The messages of the failed cases and of the errored ones in a JUnit XML report (none if
    pytest wrote none: a timeout, a crash before the end)."""
    if not report.is_file():
        return (), ()
    try:
        root = ElementTree.parse(report).getroot()
    except ElementTree.ParseError:
        return (), ()
    failures = tuple(f.get("message", "") for f in root.iter("failure"))
    errors = tuple(e.get("message", "") for e in root.iter("error"))
    return failures, errors


# What a failed assertion looks like in a JUnit message: `assert`, or pytest's own Failed
# (pytest.raises that did not raise, pytest.fail, a pytest.warns that saw nothing).
ASSERTION_FAILURES = ("AssertionError", "assert ", "Failed:", "Failed ")


def is_assertion(message: str) -> bool:
    return message.lstrip().startswith(ASSERTION_FAILURES)


def judge(mutation: Mutation, run: TestRun, seconds: float) -> Outcome:
    if run.code is None:
        return Outcome(mutation, ERROR, f"timed out:\n{run.output}", seconds)
    if run.code == 0:
        return Outcome(mutation, SURVIVED, "the test passed with the mutation in place", seconds)
    if run.code != 1:
        return Outcome(mutation, ERROR, f"pytest exited {run.code} (not a test failure):\n"
                       f"{run.output}", seconds)
    if run.errors:
        return Outcome(mutation, ERROR, "a fixture failed, not the test: "
                       + "; ".join(run.errors) + f"\n{run.output}", seconds)
    if not run.failures:
        return Outcome(mutation, ERROR, f"pytest exited 1 with no failed case in its report:\n"
                       f"{run.output}", seconds)
    others = [m for m in run.failures if not is_assertion(m)]
    if others:
        return Outcome(mutation, ERROR, "the test failed on an exception, not an assertion: "
                       + "; ".join(m.splitlines()[0] if m else "(no message)" for m in others)
                       + f"\n{run.output}", seconds)
    return Outcome(mutation, KILLED, run.failures[0].splitlines()[0], seconds)
