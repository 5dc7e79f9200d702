"""Health per PostgreSQL server: what holds a run is its own server's, and one server runs jobs
of a bounded number of its databases at once, whichever workers work them.

`near` lives on the first server and `far` on the second (config/settings/test.py); the
per-server limit is tested on databases cloned from `near`'s, all on the first server, that the
real Celery workers know from a targets file (MW_TARGETS_FILE) with MW_SERVER_LIMIT set.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.db.models.functions import Now

from migrations_worker.models import HoldKind, JobRun, RunStatus, ServerSlot
from migrations_worker.runs import dispatch
from tests.conftest import database_url
from tests.engine.test_targets_runs import many_targets, status_on
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])

# -- a standby gone away, told by its replication slot ------------------------------------------

SLOT_LIMIT = 64 * 1024  # bytes of WAL an idle slot may retain before it holds runs


@contextlib.contextmanager
def idle_slot_retaining_wal(using: str) -> Iterator[str]:
    """A physical replication slot on `using`'s server that no standby streams from, reserving
    WAL from now on, then a megabyte of WAL written; dropped at the end, whatever happens."""
    name = f"mw_{settings.TEST_DATABASE_NAME}_gone"[:63]
    with psycopg.connect(database_url(using), autocommit=True) as admin:
        admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE slot_name = %s", [name])
        admin.execute("SELECT pg_create_physical_replication_slot(%s, true)", [name])
        try:
            admin.execute("SELECT pg_logical_emit_message(true, 'mw-test', repeat('x', %s))",
                          [1024 * 1024])
            yield name
        finally:
            admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          "WHERE slot_name = %s", [name])


def held(using: str, run_id: int) -> tuple[str, str]:
    run = JobRun.objects.using(using).get(pk=run_id)
    return run.hold_kind, run.hold_reason


def test_an_idle_slot_retaining_wal_on_the_second_server_holds_a_run_there_and_not_one_on_the_first(
        processes):
    options = {"max_batch_size": 100, "max_replica_lag_bytes": SLOT_LIMIT, "hold_seconds": 0.5}
    for using in ("near", "far"):
        make_widgets(1_000, using=using)
        Knob.objects.using(using).create(name="sleep", value=0.05)
    # Two worker processes, one per run at once (a process holds one embedded worker).
    processes.worker("w1")
    processes.worker("w2")
    with idle_slot_retaining_wal("far") as slot:
        runs = {using: dispatch.start(JOB, batch_size=100, options=options, using=using)
                for using in ("near", "far")}
        wait_until(lambda: held("far", runs["far"].pk)[0] == HoldKind.STANDBY_SLOT, 60,
                   message="the run on far held by the slot")
        reason = held("far", runs["far"].pk)[1]
        assert f"replication slot '{slot}' has no standby connected and retains " in reason
        assert "MB of WAL" in reason and "limit 64.0 kB" in reason

        wait_until(lambda: status_on("near", runs["near"].pk) == RunStatus.FINISHED, 60,
                   message="the run on near finished while far is held")
        assert held("near", runs["near"].pk) == ("", "")
        far = JobRun.objects.using("far").get(pk=runs["far"].pk)
        assert (far.status, far.batches_done, far.hold_kind) == (
            RunStatus.RUNNING, 0, HoldKind.STANDBY_SLOT)

    wait_until(lambda: status_on("far", runs["far"].pk) == RunStatus.FINISHED, 60,
               message="the run on far finished once the slot was dropped")
    for using in ("near", "far"):
        assert touches_histogram(using=using) == {1: 1_000}
    assert held("far", runs["far"].pk) == ("", "")
    assert runs["far"].events.using("far").filter(hold_kind=HoldKind.STANDBY_SLOT).exists()


# -- at most SERVER_LIMIT databases of one server at once ---------------------------------------

FIRST_SERVER = f"{connections['default'].settings_dict['HOST']}:" \
               f"{connections['default'].settings_dict['PORT']}"
# Run by `manage.py shell` with the targets file: widgets, a sleep per batch and a run on each
# of the targets named (formatted in).
START = """
from migrations_worker.runs import dispatch
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets
for alias in {aliases!r}:
    make_widgets({widgets}, using=alias)
    Knob.objects.using(alias).create(name="sleep", value={sleep})
    dispatch.start(JOB, batch_size=100, options={options!r}, using=alias)
"""
OPTIONS = {"max_batch_size": 100, "hold_seconds": 0.3}


def start_runs(manage, targets_file, aliases: list[str], *, widgets: int, sleep: float,
               options: dict) -> None:
    script = START.format(aliases=aliases, widgets=widgets, sleep=sleep, options=options)
    started = manage("shell", "-c", script, env={"MW_TARGETS_FILE": str(targets_file)})
    assert started.returncode == 0, started.stderr


def run_of(url: str) -> tuple[str, str, int]:
    """(status, hold kind, batches done) of the run the test started in a cloned target: the
    latest (the clone's template may hold the run its migrations finished inline, on no rows)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT status, hold_kind, batches_done FROM migrations_worker_jobrun "
                            "ORDER BY id DESC LIMIT 1").fetchone() or ("", "", 0)


def touches_of(url: str) -> dict[int, int]:
    """How many widgets of a cloned target were touched how many times."""
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1"))


def leases_on(server: str) -> list[str]:
    """The targets holding an unexpired lease on one of `server`'s slots."""
    return sorted(ServerSlot.objects.filter(server=server, lease_until__gte=Now())
                  .values_list("target", flat=True).distinct())


def databases_in_a_batch(names: list[str]) -> int:
    """Databases of the first server with a batch in flight right now (asleep in pg_sleep),
    read in one statement: one snapshot of the server's sessions."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT datname) FROM pg_stat_activity WHERE state = "
                       "'active' AND query LIKE 'SELECT pg_sleep%%' AND datname = ANY(%s)", [names])
        return cursor.fetchone()[0]


def server_busy_reasons(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [m for (m,) in conn.execute("SELECT message FROM migrations_worker_jobrunevent "
                                           "WHERE hold_kind = 'server_busy'")]


@pytest.mark.slow
def test_four_databases_on_one_server_with_a_limit_of_two_never_run_more_than_two_at_once(
        processes, manage, tmp_path):
    with many_targets(4, tmp_path) as (urls, targets_file):
        processes.env = {**processes.env, "MW_TARGETS_FILE": str(targets_file),
                         "MW_SERVER_LIMIT": "2"}
        # Worker processes: three at once, reading the targets file and limit from their env.
        for name in ("w1", "w2", "w3"):
            processes.worker(name)
        start_runs(manage, targets_file, list(urls), widgets=800, sleep=0.15,
                   options={**OPTIONS, "slice_seconds": 1.0})
        names = [url.rsplit("/", 1)[1] for url in urls.values()]
        most_leases, most_in_batches, kinds_seen = 0, 0, set()
        deadline = time.monotonic() + 180
        while not all(run_of(url)[0] == RunStatus.FINISHED for url in urls.values()):
            assert time.monotonic() < deadline, "the four runs did not finish in time"
            most_leases = max(most_leases, len(leases_on(FIRST_SERVER)))
            most_in_batches = max(most_in_batches, databases_in_a_batch(names))
            kinds_seen |= {run_of(url)[1] for url in urls.values()}
            time.sleep(0.05)

        assert most_leases == 2  # the limit, reached and never passed
        assert most_in_batches <= 2
        assert HoldKind.SERVER_BUSY in kinds_seen
        waited = [m for url in urls.values() for m in server_busy_reasons(url)]
        assert waited
        assert all(f"server '{FIRST_SERVER}' already runs jobs on 2 database(s), its limit "
                   f"(SERVER_LIMIT 2): t" in m for m in waited)
        assert all(touches_of(url) == {1: 800} for url in urls.values())
        assert leases_on(FIRST_SERVER) == []  # every finished run gave its slot back


@pytest.mark.slow
def test_a_worker_killed_while_holding_the_servers_only_slot_frees_it_when_its_lease_runs_out(
        processes, manage, tmp_path):
    with many_targets(2, tmp_path) as (urls, targets_file):
        processes.env = {**processes.env, "MW_TARGETS_FILE": str(targets_file),
                         "MW_SERVER_LIMIT": "1"}
        # Worker processes: w1 is SIGKILLed holding the slot; the targets file comes by env.
        processes.worker("w1")
        # One long slice: t0 stays with w1 until w1 is killed.
        start_runs(manage, targets_file, ["t0"], widgets=4_000, sleep=0.5,
                   options={**OPTIONS, "slice_seconds": 120.0})
        wait_until(lambda: run_of(urls["t0"])[2] >= 1, 60, message="t0 under way on w1")
        processes.worker("w2")
        start_runs(manage, targets_file, ["t1"], widgets=300, sleep=0.0, options=OPTIONS)
        wait_until(lambda: run_of(urls["t1"])[1] == HoldKind.SERVER_BUSY, 60,
                   message="t1 waiting for the slot t0 holds")
        assert leases_on(FIRST_SERVER) == ["t0"]

        processes.kill("w1", signal.SIGKILL)
        lease_until = ServerSlot.objects.get(target="t0").lease_until  # renewed by w1 no more
        wait_until(lambda: run_of(urls["t1"])[0] == RunStatus.FINISHED, 60,
                   message="t1 started and finished once t0's lease ran out")
        # Not before the lease ran out (the stale-heartbeat time, 3 s in tests).
        with psycopg.connect(urls["t1"], autocommit=True) as conn:
            first_batch = conn.execute("SELECT min(started_at) FROM migrations_worker_jobbatch")
            assert first_batch.fetchone()[0] >= lease_until
        # t0's run is still `running`, its slice lost with w1 (no beat here to re-send it).
        assert run_of(urls["t0"])[0] == RunStatus.RUNNING

        processes.beat()
        wait_until(lambda: run_of(urls["t0"])[0] == RunStatus.FINISHED, 120,
                   message="t0 re-sent by beat and finished")
        assert (touches_of(urls["t0"]), touches_of(urls["t1"])) == ({1: 4_000}, {1: 300})
