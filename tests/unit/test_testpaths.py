"""Every folder of tests is collected by a plain `pytest` (what `make test` and CI run): a folder
left out of `testpaths` would pass silently by never running."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_folder_holding_tests_is_in_testpaths():
    configured = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    listed = {Path(p) for p in configured["testpaths"]}
    holding = {path.parent.relative_to(ROOT) for path in (ROOT / "tests").rglob("test_*.py")}
    assert holding - listed == set()


def test_every_test_run_alone_is_named_by_a_path_that_exists():
    """A renamed file would silently leave the serial phase and share the machine again."""
    from tests.conftest import SERIAL

    assert [prefix for prefix in SERIAL if not (ROOT / prefix).exists()] == []


def test_the_suite_runner_refuses_a_worker_count_that_is_not_a_number():
    import subprocess
    import sys

    ran = subprocess.run([sys.executable, "-m", "tests", "tests/unit/test_testpaths.py"],
                         cwd=ROOT, env={"TEST_WORKERS": "many", "PATH": ""}, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 2
    assert "TEST_WORKERS must be a whole number of workers (0: none), not 'many'" in ran.stderr
