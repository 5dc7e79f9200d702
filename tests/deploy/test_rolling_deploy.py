"""A rolling deploy that both releases survive, end to end on a seeded legacy database with real
Celery workers: the previous release (the legacy models) writes throughout the pre-deploy stage,
both releases write during the rollout, the new one alone during the post-deploy stage.

The previous release saves assets the way the old model does (every field, `sector` and
`industry` included, sometimes re-classified) and writes holdings, alerts, watchlist entries,
prices, news links and benchmarks naming whatever asset its user looks at, duplicates the merge
removes included; the new release does the same with today's models and ids it stored before
the merge. Neither may see a single error, every text the previous release wrote must be
archived when the columns go (or replaced by its own next one before the capture trigger of
assets.0008 existed), and every row either wrote must be on the survivor of the asset it
named (or replaced under the merge rules, its before-image archived). Neither may wait longer
than 100 ms for a lock (the server logs every such wait, tests/lock_waits.py).

The merge (`ticker_dedup`) runs while both releases serve, by construction: the pre-deploy stage
enqueues it, and the test pauses its run the moment it appears (the operator's pause, between
batches), resumes it once the new release serves beside the previous one, and stops the
previous release only after a group was merged; the timestamps in the database and the
releases' own then show it.
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
from django.db import connection, connections

from migrations_worker.exceptions import InvalidTransition
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.runs.controls import CONTROLS
from seed.releases import instruments, positions, verify_writes
from tests.lock_waits import ServerLog, assert_no_application_waited
from tests.scratch import Database, ScratchDatabase
from tests.workers import Processes, flush_broker

# Slow jobs (a pause after each batch) and more duplicate groups: the operator's pause lands on
# the merge long before it could be done.
TUNING = {"pause_seconds": 0.3}
MERGE = "ticker_dedup"
ALIAS = "rolling"  # the scratch database, for the engine's own controls in this process


@pytest.fixture
def seeded(tmp_path):
    db = ScratchDatabase(f"{connection.settings_dict['TEST']['NAME']}_rolling").create()
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


@pytest.fixture
def engine(seeded, django_db_blocker):
    """The scratch database under an alias of this process, for the operator's controls."""
    connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": seeded.name}
    with django_db_blocker.unblock():
        yield ALIAS
        connections[ALIAS].close()
    del connections[ALIAS]
    del connections.settings[ALIAS]


def application(release: str) -> str:
    """The application_name of a release's sessions (as deploy/demo.sh names them)."""
    return f"{release}-release"


class Traffic:
    """One release's `demo_load` process: started, serving, stopped, its JSON read back."""

    def __init__(self, db: ScratchDatabase, release: str, workdir):
        self.output = workdir / f"{release}.json"
        self.stop_file = workdir / f"stop-{release}"
        self.ready_file = workdir / f"ready-{release}"
        self.log = workdir / f"{release}.log"
        self.process = db.popen("demo_load", "--release", release, "--pause", "0.01", "--sample", "0",
                                "--output", str(self.output), "--stop-file", str(self.stop_file),
                                "--ready-file", str(self.ready_file), log=self.log,
                                env={"DB_APPLICATION_NAME": application(release)})

    def serving(self, timeout: float = 180) -> None:
        """Returns once the release's first operation is done."""
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"not serving after {timeout}s"
            time.sleep(0.05)

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


def pre_stage_with_the_merge_paused(db: ScratchDatabase, engine: str, workdir: Path) -> str:
    """The pre-deploy stage, while the operator's pause lands on the merge's run the moment the
    stage creates it (before a worker takes it, or between its first batches: the job takes
    several, with a pause after each); the stage's output."""
    log = workdir / "pre.log"
    process = db.popen("migrate_online", "--stage", "pre", "--wait", "--timeout", "300",
                       "--poll", "0.3", log=log)
    paused = None
    while paused is None:
        ended = process.poll() is not None
        run = JobRun.objects.using(engine).filter(job_name=MERGE).first()
        if run is not None:
            assert CONTROLS["pause"].allows(run), f"{MERGE} was {run.status} before it was paused"
            try:
                paused = CONTROLS["pause"].apply(run, actor="test_rolling_deploy", using=engine)
            except InvalidTransition:  # a worker took it just now: read it again, pause it running
                continue
        assert paused is not None or not ended, f"no {MERGE} run: {log.read_text()[-3000:]}"
        time.sleep(0.02)
    assert process.wait(timeout=400) == 0, log.read_text()[-3000:]
    return log.read_text()


def settled(engine: str, status: str, timeout: float = 120) -> JobRun:
    """The merge's run, once it is in `status`."""
    deadline = time.monotonic() + timeout
    while (run := JobRun.objects.using(engine).get(job_name=MERGE)).status != status:
        assert time.monotonic() < deadline, f"{MERGE} run #{run.pk} still {run.status}"
        time.sleep(0.1)
    return run


def merged(db: ScratchDatabase) -> int:
    return db.scalar("SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NOT NULL")


@pytest.mark.slow
def test_both_releases_write_through_a_staged_deploy_without_an_error_and_nothing_is_lost(
    seeded, engine, workers, releases, tmp_path
):
    db = seeded
    with db.connect() as conn, conn.cursor() as cursor:
        before = positions(cursor)
        listed = instruments(cursor)
    log = ServerLog(db.url)
    workers.worker("w1")
    workers.worker("w2")
    workers.beat()

    previous = releases("previous")
    previous.serving()  # the previous release is serving before the deploy starts
    pre = pre_stage_with_the_merge_paused(db, engine, tmp_path)
    settled(engine, RunStatus.PAUSED)
    merged_before_the_rollout = merged(db)
    groups = db.scalar("SELECT count(*) FROM assets_duplicatetickergroup")
    assert merged_before_the_rollout < groups, "the merge was done before it could be paused"

    new = releases("new")  # the rollout: both releases side by side
    new.serving()
    db.manage("backfill", "resume", MERGE)
    deadline = time.monotonic() + 120
    while merged(db) == merged_before_the_rollout:  # the merge goes on while both serve
        assert time.monotonic() < deadline, f"{MERGE} merged nothing after it was resumed"
        time.sleep(0.1)
    time.sleep(1.0)
    old = previous.stop()
    post = stage(db, "post")
    time.sleep(0.5)
    current = new.stop()

    for traffic in (old, current):
        print({k: v for k, v in traffic.items() if k not in ("texts", "rows", "holdings", "links")})
    print(f"groups: {groups}, merged before the rollout: {merged_before_the_rollout}")
    assert "assets.0013_drop_legacy_text_columns" not in pre
    assert "applying assets.0013_drop_legacy_text_columns... OK" in post

    # The merge ran while both releases served, as the database and the releases recorded it:
    # its run was going, and groups were merged, between the new release's first operation and
    # the previous release's last.
    both = (current["served_from"], old["served_until"])
    assert both[0] < both[1], both
    (started, finished), = db.rows(
        "SELECT extract(epoch FROM started_at), extract(epoch FROM finished_at) "
        "FROM migrations_worker_jobrun WHERE job_name = %s", [MERGE])
    assert started < both[1] and finished > both[0], (started, finished, both)
    assert db.scalar("SELECT count(*) FROM assets_duplicatetickergroup "
                     "WHERE merged_at > to_timestamp(%s) AND merged_at < to_timestamp(%s)", both) > 0

    # No session of either release waited for a lock longer than 100 ms (the server logs each).
    assert_no_application_waited(log, database=db.name,
                                 applications={application("previous"), application("new")})

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
        # (A text the previous release replaced itself before assets.0008's capture trigger
        # existed is superseded, not lost: the job archives what an asset holds.)
        kept = verify_writes(cursor, old)
        assert kept["texts_archived"] + kept["texts_superseded"] == len(old["texts"])
        assert kept["texts_archived"] > 20

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
