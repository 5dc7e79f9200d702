"""Beat's re-send of stale runs (`requeue_stale_runs`) never undoes an operator: a run paused
between beat's look at the stale runs and its lock on the run stays paused."""

import threading
import time

import pytest
from django.db import connection, transaction

from migrations_worker.models import JobRun, RunStatus
from migrations_worker.runs import control
from migrations_worker.runs.states import enter
from migrations_worker.tasks import requeue_stale_runs_on
from tests.engine_app.support import JOB, make_widgets

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
        return bool(row and row[0])


def test_a_run_paused_while_beat_reaches_for_it_stays_paused(settings):
    make_widgets(10)
    run = control.create_run(JOB)  # pending, never dispatched: beat's to send once stale
    # Stale at once (the settings fixture changes them for every thread).
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "STALE_HEARTBEAT_SECONDS": 0}
    beat: dict = {}

    def requeue() -> None:  # beat, on a connection of its own (this thread's)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            beat["pid"] = cursor.fetchone()[0]
        try:
            beat["requeued"] = requeue_stale_runs_on("default")
        finally:
            connection.close()

    with transaction.atomic():  # the operator's pause, holding the run's row lock...
        locked = JobRun.objects.select_for_update().get(pk=run.pk)
        thread = threading.Thread(target=requeue)
        thread.start()
        deadline = time.monotonic() + 30
        while "pid" not in beat or not waiting_for_a_lock(beat["pid"]):  # ...beat waits for it
            assert thread.is_alive() and time.monotonic() < deadline, beat
            time.sleep(0.02)
        enter(locked, RunStatus.PAUSED, using="default", actor="operator", verb="pause")
    thread.join(30)

    assert beat["requeued"] == []
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PAUSED
