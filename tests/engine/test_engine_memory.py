"""Memory stays flat as the table grows: the engine holds a batch, never the table."""

import sys

import pytest
from django.db import connection

from tests.engine_app.support import JOB, make_widgets

pytestmark = pytest.mark.django_db(transaction=True)

MEASURE = (
    "import resource, subprocess, sys;"
    "done = subprocess.run(sys.argv[1:]);"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_kib_of_inline_run(manage_env: dict) -> int:
    import subprocess

    from tests.conftest import ROOT

    result = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, str(ROOT / "manage.py"), "backfill",
         "run", JOB, "--batch-size", "1000"],
        env=manage_env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    code, rss = result.stdout.split()[-2:]
    assert code == "0", result.stderr
    return int(rss)


def reset_widgets() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE engine_app_widget, migrations_worker_jobrun CASCADE")


@pytest.mark.slow
def test_a_run_over_a_million_rows_needs_no_more_memory_than_over_ten_thousand(celery_env):
    make_widgets(10_000)
    small = peak_rss_kib_of_inline_run(celery_env)
    reset_widgets()
    make_widgets(1_000_000)
    large = peak_rss_kib_of_inline_run(celery_env)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM engine_app_widget WHERE touches = 1")
        assert cursor.fetchone()[0] == 1_000_000
    print(f"peak RSS of `backfill run`: 10k rows {small} KiB, 1M rows {large} KiB")
    # 100x the rows; allow 10% (and 8 MiB) of noise, nowhere near the ~100 MiB a leak would add.
    assert large <= small * 1.10 + 8 * 1024, f"peak RSS {small} KiB for 10k rows, {large} KiB for 1M"
