"""Bad rows set aside: a batch that fails for a reason other than a busy database is cut in two
until the failing key stands alone, that key is quarantined after its attempts, and the run goes
on; it cannot finish (nor open its gate) until an operator fixes the rows or accepts them, and
past its budget it pauses. The bad rows here are real: a CHECK constraint the job's change
breaks for chosen keys (SQLSTATE 23514), on the deliberately non-idempotent test job, so a row
done twice or skipped shows in the data."""

import json
import math
import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from migrations_worker.exceptions import JobNotFinished
from migrations_worker.models import BatchStatus, JobBatch, JobRun, QuarantinedKey, Resolution, RunStatus
from migrations_worker.ops import metrics
from migrations_worker.runs import control, dispatch, gates, quarantine, runner
from tests.engine_app.support import JOB, make_widgets, touches_histogram
from tests.workers import wait_until

# The metrics read every target (`near`, `far`: config/settings/test.py).
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])

CHECK = "widget_untouchable"
FIXED_BATCHES = {"batch_size": 1_000, "min_batch_size": 1_000, "max_batch_size": 1_000,
                 "retry_backoff_seconds": 0.1}
FAILED_ATTEMPT = re.compile(r"attempt=\d+ failed after")


@pytest.fixture(autouse=True)
def no_runs():
    """From no runs (creating the test database enqueued one)."""
    JobRun.objects.all().delete()


@pytest.fixture
def bad_rows():
    """Make the rows with these keys impossible to touch; the constraint goes with the test."""

    def plant(*keys: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE engine_app_widget ADD CONSTRAINT {CHECK} "
                           f"CHECK (id NOT IN ({', '.join(map(str, keys))}) OR touches = 0)")

    yield plant
    fix_rows()


def fix_rows() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE engine_app_widget DROP CONSTRAINT IF EXISTS {CHECK}")


def quarantined(run: JobRun) -> list[tuple]:
    return list(QuarantinedKey.objects.filter(run=run).order_by("key")
                .values_list("key", "sqlstate", "attempts", "resolution"))


def quarantine_metric(run: JobRun) -> dict[str, float]:
    text = generate_latest(metrics.registry()).decode()
    return {sample.labels["state"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "mw_run_quarantined_keys"
            for sample in family.samples
            if (sample.labels["target"], sample.labels["run"]) == ("default", str(run.pk))}


def test_one_bad_row_in_a_large_run_is_quarantined_alone_and_every_other_row_done_once(
    processes, tmp_path, bad_rows
):
    make_widgets(20_000)
    bad_rows(7_777)
    # Two worker processes, one lane each; their own logs are read back below.
    processes.worker("w1")
    processes.worker("w2")
    run = dispatch.start(JOB, workers=2, options=FIXED_BATCHES)
    wait_until(lambda: JobRun.objects.get(pk=run.pk).status == RunStatus.FAILED, 120,
               message="the run to end its walk")
    run.refresh_from_db()

    # Exactly that row, with its SQLSTATE, after its attempts; every other row done once.
    assert quarantined(run) == [(7_777, "23514", 3, Resolution.OPEN)]
    assert CHECK in QuarantinedKey.objects.get(run=run).error
    assert touches_histogram() == {1: 19_999, 0: 1}
    assert run.batches.get(status=BatchStatus.QUARANTINED).end_key == 7_777
    assert not run.batches.filter(status=BatchStatus.FAILED).exists()
    assert run.error.startswith("1 quarantined key(s) left open: key 7777 (IntegrityError")

    # No retry loop: one failed attempt per cut of the bad row's batch (at most log2 of its
    # size), then the row's own attempts.
    cuts = run.batches.count() - 20
    assert 1 <= cuts <= math.ceil(math.log2(1_000))
    failures = sum(len(FAILED_ATTEMPT.findall(log.read_text())) for log in tmp_path.glob("w*.log"))
    assert failures == cuts + 3

    # The operator sees it: the list, the gate's refusal, the metrics.
    listed = json.loads(call_json("backfill", "quarantine", JOB, "--json"))
    assert [(k["key"], k["state"], k["sqlstate"]) for k in listed["keys"]] == [
        (7_777, "open", "23514")]
    gate = gates.decide(JOB, inline_limit=0)
    assert gate.state == gates.GateState.HELD
    with pytest.raises(JobNotFinished, match=f"backfill quarantine {JOB}"):
        gates.pass_gate(JOB, inline_limit=0)
    assert quarantine_metric(run) == {"open": 1.0, "accepted": 0.0, "retried": 0.0}

    # Accepting it lets the run finish (the one row left is the accepted key), and the gate open.
    call_command("backfill", "quarantine", JOB, "--accept")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert "verified: 1 row(s) left, no more than the 1 accepted quarantined key(s)" in (
        run.events.last().message)
    assert quarantined(run) == [(7_777, "23514", 3, Resolution.ACCEPTED)]
    assert gates.decide(JOB, inline_limit=0).state == gates.GateState.OPEN


def call_json(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_fixing_the_row_and_retrying_walks_only_the_quarantined_key_again(bad_rows):
    make_widgets(2_000)
    bad_rows(1_234)
    with pytest.raises(CommandError) as failed:
        call_command("backfill", "run", JOB, "--batch-size", "100")
    assert failed.value.returncode == 4
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FAILED
    assert quarantined(run) == [(1_234, "23514", 3, Resolution.OPEN)]

    fix_rows()
    call_command("backfill", "retry", JOB)
    assert "1 quarantined key(s) requeued" in run.events.filter(
        to_status=RunStatus.RUNNING).last().message
    call_command("backfill", "run", JOB)
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: 2_000}  # the one row walked again, none of the others
    assert quarantined(run) == [(1_234, "23514", 3, Resolution.RETRIED)]


def test_past_its_budget_a_run_pauses_and_accepted_keys_let_it_finish(bad_rows, client):
    make_widgets(1_000)
    bad_rows(100, 300, 500)
    budget = ["--option", "quarantine_allowance=1", "--option", "quarantine_rate=0",
              "--option", "retry_backoff_seconds=0"]
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB, "--batch-size", "100", *budget)
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.PAUSED  # at the second key, over a budget of one
    assert [key for key, *_ in quarantined(run)] == [100, 300]
    assert "2 key(s) quarantined, over the budget of 1" in run.events.get(
        to_status=RunStatus.PAUSING).message
    assert not JobBatch.objects.filter(run=run, start_key__gte=500).exists()  # it stopped there

    # The run's page shows them.
    client.force_login(User.objects.create_superuser("admin"))
    page = client.get(reverse("admin:migrations_worker_jobrun_change", args=[run.pk]))
    assert b"Quarantined keys (2 open of 2)" in page.content

    # Accepted, they no longer count against the budget; the walk goes on to the third.
    call_command("backfill", "quarantine", JOB, "--accept")
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED  # its walk is over with one key open
    assert [(key, state) for key, _, _, state in quarantined(run)] == [
        (100, Resolution.ACCEPTED), (300, Resolution.ACCEPTED), (500, Resolution.OPEN)]

    call_command("backfill", "quarantine", JOB, "--accept", "--key", "500")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert touches_histogram() == {1: 997, 0: 3}


def test_accepting_some_keys_of_a_failed_run_keeps_them_accepted_and_exits_4_while_it_stays_failed(
        bad_rows):
    make_widgets(1_000)
    bad_rows(200, 600)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB, "--batch-size", "100")
    run = JobRun.objects.get(job_name=JOB)
    assert run.status == RunStatus.FAILED

    with pytest.raises(CommandError, match=f"{JOB} run #{run.pk} is still failed: .*600") as still:
        call_command("backfill", "quarantine", JOB, "--accept", "--key", "200")
    assert still.value.returncode == 4
    assert [(key, state) for key, _, _, state in quarantined(run)] == [
        (200, Resolution.ACCEPTED), (600, Resolution.OPEN)]

    call_command("backfill", "quarantine", JOB, "--accept", "--key", "600")  # exits 0: finished
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED


def test_a_stale_claim_on_a_batch_since_cut_in_two_is_fenced(bad_rows):
    """The cut changes the batch's end, and the fence checks it: a worker that claimed the whole
    range and stalled must not apply it over a first half someone else claims afresh."""
    make_widgets(100)
    run = control.create_run(JOB, options={"batch_size": 100, "max_batch_size": 100})
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    stale = runner.RunWorker(run.pk, name="stale")
    claim = stale._claim_next()
    assert (claim.start, claim.end, claim.attempt) == (0, 100, 1)

    batch = JobBatch.objects.get(pk=claim.batch_id)  # failed elsewhere, then cut
    count, middle = quarantine.keys_in(stale.job, 0, 100, using="default")
    quarantine.split(batch, middle, count, using="default")
    fresh = runner.RunWorker(run.pk, name="fresh")._claim_next()
    assert (fresh.batch_id, fresh.end, fresh.attempt) == (claim.batch_id, 50, 1)

    stale._process(claim)
    assert touches_histogram() == {0: 100}  # fenced: nothing applied
    runner.RunWorker(run.pk, name="fresh")._process(fresh)
    assert touches_histogram() == {1: 50, 0: 50}


@pytest.mark.parametrize("args, said", [
    (["--key", "5"], "--key chooses keys to accept: use it with --accept"),
    (["--accept"], "has no open quarantined key"),
    (["--accept", "--key", "999"], "has no open quarantined key 999"),
])
def test_quarantine_refuses_what_it_cannot_do_and_changes_nothing(manage, bad_rows, args, said):
    make_widgets(300)
    bad_rows(150)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB, "--batch-size", "100")
    if args == ["--accept"]:
        call_command("backfill", "quarantine", JOB, "--accept")  # nothing left open after this
    before = quarantined(JobRun.objects.get(job_name=JOB))
    result = manage("backfill", "quarantine", JOB, *args)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert quarantined(JobRun.objects.get(job_name=JOB)) == before


def test_quarantine_of_an_unknown_job_or_one_never_run_is_bad_input(manage):
    assert manage("backfill", "quarantine", "no_such_job").returncode == 2
    result = manage("backfill", "quarantine", JOB)
    assert result.returncode == 2 and f"job {JOB} has never run" in result.stderr
