"""Benchmarks of the online migration engine against what a team would use instead.

`python -m bench.run --scale medium` (or `make bench`) seeds a legacy database, then measures
each contender on a fresh copy of it, with the same live load running: see bench/README.md.
Not part of the test suite: it takes minutes and its figures depend on the machine.
"""

import sys
from pathlib import Path

# The repository, the engine and the apps' source (where the data jobs a contender reuses live), on the path
# before any bench module imports from them, as manage.py does for the apps.
_ROOT = Path(__file__).resolve().parents[1]
for _path in (str(_ROOT), str(_ROOT / "engine"), str(_ROOT / "apps" / "backend" / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
