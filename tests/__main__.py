"""python -m tests [PYTEST ARGS]: the suite as `make test` runs it.

First every test that may share the machine, on TEST_WORKERS pytest-xdist workers (3 unless
told; each worker has databases and Redis databases of its own, config/settings/test.py), a
test file's tests on one worker so its fixtures are built once; then the tests marked `serial`
alone, in one process: they measure latencies and lock waits, which a busy neighbour would
distort. TEST_WORKERS=0, or a `-m` of the caller's own, runs everything in one process as plain
pytest does. The exit code is the first phase's failure, else the second's.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.chaos import seeds

NO_TESTS_COLLECTED = 5  # pytest's exit code when a phase selects nothing: not a failure here


def pytest(*args: str) -> int:
    code = subprocess.call([sys.executable, "-m", "pytest", *args])
    return 0 if code == NO_TESTS_COLLECTED else code


def main(args: list[str]) -> int:
    workers = os.environ.get("TEST_WORKERS", "3")
    if not workers.isdigit():
        print(f"TEST_WORKERS must be a whole number of workers (0: none), not {workers!r}",
              file=sys.stderr)
        return 2
    seeds.draw_fresh_seed()  # one fresh chaos seed for both phases, named alike in both headers
    if int(workers) == 0 or "-m" in args:
        return pytest(*args)
    shared = pytest("-n", workers, "--dist", "loadfile", "-m", "not serial", *args)
    alone = pytest("-m", "serial", *args)
    print(f"\nthe suite: tests on {workers} workers {'passed' if shared == 0 else 'FAILED'}, "
          f"serial tests {'passed' if alone == 0 else 'FAILED'}")
    return shared or alone


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
