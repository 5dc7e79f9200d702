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
passed through). The test failing is the mutation *killed*; passing, *survived*; anything else
(a collection error, a timeout) an *error*. It exits 0 only if every mutation was killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
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


def run_test(copy: Path, test: str, timeout: float, log: Path) -> tuple[int | None, str]:
    """pytest on one node id inside `copy`: its exit code (None: timed out) and its output's end."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 test], cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    return code, log.read_text(errors="replace")[-2000:]


def judge(mutation: Mutation, code: int | None, output: str, seconds: float) -> Outcome:
    if code == 1:  # pytest: tests failed
        return Outcome(mutation, KILLED, "", seconds)
    if code == 0:
        return Outcome(mutation, SURVIVED, "the test passed with the mutation in place", seconds)
    why = "timed out" if code is None else f"pytest exited {code} (not a test failure)"
    return Outcome(mutation, ERROR, f"{why}:\n{output}", seconds)
