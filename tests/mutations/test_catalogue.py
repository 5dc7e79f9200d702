"""The mutation catalogue is well-formed: every entry still applies to the code as it is and
names a test that exists. (Whether each test kills its mutation is `python -m tests.mutations`.)
"""

import datetime
import subprocess
import sys

from tests.mutations import ROOT, tracked_files
from tests.mutations.catalogue import MUTATIONS


def test_every_mutation_has_a_unique_name_and_changes_something_it_says_why():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
    assert all(m.old != m.new and m.why and m.name for m in MUTATIONS)


def test_every_mutation_applies_once_to_a_tracked_file():
    tracked = set(tracked_files())
    assert [m.name for m in MUTATIONS if m.file not in tracked] == []
    assert [(m.name, (ROOT / m.file).read_text().count(m.old)) for m in MUTATIONS
            if (ROOT / m.file).read_text().count(m.old) != 1] == []


def test_every_named_test_exists():
    tests = sorted({m.test for m in MUTATIONS})
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                "-p", "no:cacheprovider", *tests],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    ids = set(collected.stdout.splitlines())
    # A node id names one test, one parametrized case, or a module or function whose cases run.
    assert [t for t in tests if not any(i == t or i.startswith(t + "[") or i.startswith(t + "::")
                                        for i in ids)] == []


def test_the_record_of_a_full_run_passes_the_secret_scan(tmp_path):
    """The record is a tracked file: an entry named after the secret it plants (`SECRET_KEY=`)
    would make the scan fail on the docs, as the first record did."""
    from tests.mutations import KILLED, Outcome
    from tests.mutations.record import RECORD, render
    from tests.ops import secrets_scan

    name = str(RECORD.relative_to(ROOT))
    (tmp_path / name).parent.mkdir(parents=True)
    outcomes = [Outcome(m, KILLED, seconds=12.0) for m in MUTATIONS]
    (tmp_path / name).write_text(render(outcomes, datetime.date(2026, 12, 6), "0123abc"))
    assert [str(f) for f in secrets_scan.scan(tmp_path, [name], ROOT)] == []
