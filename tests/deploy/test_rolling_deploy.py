"""A rolling deploy that both releases survive, end to end on a seeded legacy database with real
Celery workers: the previous release (the legacy models) writes throughout the pre-deploy stage,
both releases write during the rollout, the new one alone during the post-deploy stage.

The previous release saves assets the way the old model does (every field, `sector` and
`industry` included, sometimes re-classified) and writes holdings, alerts, watchlist entries,
prices, news links and benchmarks naming whatever asset its user looks at, duplicates the merge
removes included; the new release does the same with today's models and ids it stored before
the merge. Neither may see a single error, every text the previous release wrote must be
archived when the columns go, and every row either wrote must be on the survivor of the asset it
named (or replaced under the merge rules, its before-image archived).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from seed.releases import instruments, positions, verify_writes
from tests.scratch import Database, ScratchDatabase
from tests.workers import Processes, flush_broker

# Slow jobs (a pause after each batch, groups merged one by one) and more duplicate groups, so
# the merge is still running while both releases write during the rollout.
TUNING = {"pause_seconds": 0.3}


@pytest.fixture
def seeded(tmp_path):
    db = ScratchDatabase(f"{connection.settings_dict['NAME']}_rolling").create()
    db.env.update({"MW_GATE_INLINE_LIMIT": "0", "DJANGO_SETTINGS_MODULE": "tests.chaos.settings",
                   "CHAOS_TUNING": json.dumps(TUNING),
                   "TEST_REDIS_URL": settings.CELERY_BROKER_URL})
    db.migrate_legacy()
    db.manage("seed_demo", "--size", "small", "--seed", "11", "--dup-fraction", "0.1")
    yield db
    db.drop()


@pytest.fixture
def workers(seeded, tmp_path, request):
    flush_broker(settings.CELERY_BROKER_URL)
    # Worker processes: they serve the scratch database under the chaos settings (by env).
    procs = Processes(seeded.env, tmp_path)
    yield procs
    procs.stop_all()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(procs.logs())


class Traffic:
    """One release's `demo_load` process: started, stopped, its JSON read back."""

    def __init__(self, db: ScratchDatabase, release: str, workdir):
        self.output = workdir / f"{release}.json"
        self.stop_file = workdir / f"stop-{release}"
        self.process = db.popen("demo_load", "--release", release, "--pause", "0.01", "--sample", "0",
                                "--output", str(self.output), "--stop-file", str(self.stop_file),
                                log=workdir / f"{release}.log")

    def stop(self) -> dict:
        self.stop_file.touch()
        assert self.process.wait(timeout=60) == 0, self.output.with_suffix(".log")
        return json.loads(self.output.read_text())


def started_releases(db: ScratchDatabase, workdir: Path) -> Iterator[Callable[[str], Traffic]]:
    """For a fixture: starts a release's load on `db`; whatever is still running when the test
    ends (an assertion failed before it was stopped) is killed, so no load outlives its test."""
    started: list[Traffic] = []

    def start(release: str) -> Traffic:
        started.append(Traffic(db, release, workdir))
        return started[-1]

    yield start
    for traffic in started:
        if traffic.process.poll() is None:
            traffic.process.kill()
            traffic.process.wait(timeout=10)


@pytest.fixture
def releases(seeded, tmp_path):
    yield from started_releases(seeded, tmp_path)


def stage(db: ScratchDatabase | Database, name: str, *options: str) -> str:
    """One stage of the deploy (`--wait`ed), which must succeed; `options` e.g. `--database far`."""
    result = db.manage("migrate_online", *options, "--stage", name, "--wait", "--timeout", "300",
                       "--poll", "0.3", timeout=400, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_both_releases_write_through_a_staged_deploy_without_an_error_and_nothing_is_lost(
    seeded, workers, releases
):
    db = seeded
    with db.connect() as conn, conn.cursor() as cursor:
        before = positions(cursor)
        listed = instruments(cursor)
    workers.worker("w1")
    workers.worker("w2")
    workers.beat()

    previous = releases("previous")
    time.sleep(1.0)  # the previous release is serving before the deploy starts
    pre = stage(db, "pre")
    merging = db.scalar("SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NULL")
    new = releases("new")  # the rollout: both releases side by side
    time.sleep(3.0)
    old = previous.stop()
    post = stage(db, "post")
    time.sleep(0.5)
    current = new.stop()

    for traffic in (old, current):
        print({k: v for k, v in traffic.items() if k not in ("texts", "rows", "holdings", "links")})
    print(f"groups still to merge when the rollout began: {merging}")
    assert "assets.0013_drop_legacy_text_columns" not in pre
    assert "applying assets.0013_drop_legacy_text_columns... OK" in post

    # Neither release saw an error, and both were busy throughout.
    assert old["first_errors"] == [] and old["errors"] == 0
    assert current["first_errors"] == [] and current["errors"] == 0
    assert old["statements"] > 150 and current["statements"] > 50
    assert old["operations"]["reclassify_asset"] > 5 and current["old_ids_resolved"] > 5

    with db.connect() as conn, conn.cursor() as cursor:
        # Every text the previous release wrote is archived, every row either wrote is kept.
        for traffic in (old, current):
            kept = verify_writes(cursor, traffic)
            assert kept["missing"] == [], kept["missing"][:10]
        assert verify_writes(cursor, old)["texts_archived"] == len(old["texts"]) > 20

        # Rows that named a merged-away asset were written, and landed on its survivor.
        cursor.execute("SELECT asset_id FROM assets_assetalias")
        removed = {r[0] for r in cursor.fetchall()}
        named_removed = [r for t in (old, current) for r in t["rows"] if r[2] in removed]
        assert len(named_removed) > 10
        cursor.execute("SELECT count(*) FROM assets_assetmergearchive WHERE action = 'redirected'")
        assert cursor.fetchone()[0] > 0

        # Every portfolio holds as much of each instrument as before, plus what was added. A
        # release may add a holding of an asset a release created meanwhile (the new release
        # picks its targets once the pre-deploy stage is done): those are instruments too.
        now_listed = instruments(cursor)
        cursor.execute("SELECT asset_id, survivor_id FROM assets_assetalias")
        listed = {**now_listed, **{a: now_listed[s] for a, s in cursor.fetchall()}, **listed}
        added: dict[tuple, Decimal] = defaultdict(Decimal)
        for traffic in (old, current):
            for portfolio, named, quantity in traffic["holdings"]:
                added[(portfolio, *listed[named])] += Decimal(quantity)
        after = positions(cursor)
        listed.update(instruments(cursor))  # the assets the previous release created, named since
        expected = {k: before.get(k, Decimal(0)) + added.get(k, Decimal(0))
                    for k in set(before) | set(added)}
        assert {k: v for k, v in after.items() if v} == {k: v for k, v in expected.items() if v}

        # The jobs converged under both releases' writes and verified it.
        cursor.execute("SELECT job_name, status, error FROM migrations_worker_jobrun "
                       "WHERE job_name <> 'test_touch_widgets' ORDER BY id")
        runs = cursor.fetchall()
        assert {(job, status) for job, status, _ in runs} == {
            ("alerts_uuid", "finished"), ("legacy_columns", "finished"), ("ticker_dedup", "finished")
        }, runs
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM assets_asset "
                       "GROUP BY ticker, exchange_id HAVING count(*) > 1) d")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM information_schema.columns "
                       "WHERE table_name = 'assets_asset' AND column_name IN ('sector', 'industry')")
        assert cursor.fetchone()[0] == 0
