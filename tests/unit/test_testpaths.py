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
