"""Operator input, good and bad: each mistake gets a clear error, a telling exit code, and
changes nothing."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from migrations_worker.exceptions import AlreadyActive
from migrations_worker.models import JobRun, JobRunEvent, RunStatus
from migrations_worker.runs import control
from migrations_worker.runs.controls import CONTROLS
from tests.engine_app.support import JOB, make_widgets
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot() -> tuple:
    return (
        list(JobRun.objects.order_by("id").values_list("id", "status", "batch_size")),
        JobRunEvent.objects.count(),
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["start", "no_such_job"], 2, "unknown job 'no_such_job'; known jobs:"),
        (["start", "x'; DROP TABLE engine_app_widget; --"], 2, "unknown job"),
        (["start", JOB, "--batch-size", "0"], 2, "must be positive, got 0"),
        (["start", JOB, "--batch-size", "-5"], 2, "must be positive, got -5"),
        (["start", JOB, "--batch-size", "ten"], 2, "must be a whole number"),
        (["start", JOB, "--batch-size", "99999999999"], 2, "above this job's maximum"),
        (["start", JOB, "--option", "nonsense=1"], 2, "unknown tuning option(s): nonsense"),
        (["start", JOB, "--option", "pause_seconds"], 2, "--option takes KEY=VALUE"),
        (["run", JOB, "--option", "nonsense=1"], 2, "unknown tuning option(s): nonsense"),
        (["run", JOB, "--option", "max_replica_lag_bytes=0"], 2, "max_replica_lag_bytes must be"),
        (["pause", JOB], 3, "has no active run: it never ran"),
        (["status", "no_such_job"], 2, "unknown job"),
        (["wait", "no_such_job"], 2, "unknown job"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(manage, args, code, message):
    make_widgets(10)
    before = snapshot()
    result = manage("backfill", *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert snapshot() == before


def test_a_job_started_twice_is_refused_while_the_first_run_is_active(manage):
    make_widgets(10)
    first = manage("backfill", "start", JOB)
    assert first.returncode == 0, first.stderr
    before = snapshot()
    second = manage("backfill", "start", JOB)
    assert second.returncode == 3
    assert f"{JOB} already has run #" in second.stderr
    assert snapshot() == before


def test_two_concurrent_starts_create_exactly_one_run():
    import threading

    from django.db import connections

    make_widgets(10)
    outcomes = []

    def start():
        try:
            outcomes.append(control.create_run(JOB))
        except AlreadyActive as exc:
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, JobRun) for o in outcomes) == 1
    assert JobRun.objects.filter(job_name=JOB).count() == 1


def test_a_start_racing_an_uncommitted_one_waits_for_it_and_is_refused_as_already_active():
    """The check for an active run cannot see another start's uncommitted insert: the unique
    index on active runs makes the second insert wait for the first to commit, then refuses it,
    and the refusal names the run that won (exit 3), never an IntegrityError's traceback."""
    import threading

    from django.db import connection, connections, transaction

    make_widgets(10)
    inserted = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                control.create_run(JOB)
                inserted.set()
                with connection.cursor() as cursor:  # pg_locks: not a per-transaction snapshot
                    wait_until(lambda: cursor.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
                        "AND NOT granted") or cursor.fetchone()[0] > 0, 15,
                        message="the second start to wait for the first's insert")
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inserted.wait(30)
        try:
            second = control.create_run(JOB)
        except Exception as exc:  # which exception it is, is the point
            second = exc
    finally:
        thread.join(30)
    assert isinstance(second, AlreadyActive), repr(second)
    [run] = JobRun.objects.filter(job_name=JOB, status=RunStatus.PENDING)
    assert str(second).startswith(f"{JOB} already has run #{run.pk} (pending)")


def test_resume_of_a_finished_run_is_refused(manage):
    make_widgets(10)
    assert manage("backfill", "run", JOB).returncode == 0
    before = snapshot()
    result = manage("backfill", "resume", JOB)
    assert result.returncode == 3
    assert "has no active run: its latest run #" in result.stderr
    assert "is finished" in result.stderr
    assert snapshot() == before


def test_start_with_the_broker_down_says_so_and_creates_no_run(manage):
    make_widgets(10)
    result = manage("backfill", "start", JOB, env={"TEST_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 6
    assert "cannot reach the Celery broker" in result.stderr
    assert not JobRun.objects.exists()


def test_wait_times_out_with_exit_code_5_and_reports_progress(manage):
    make_widgets(10)
    control.create_run(JOB)
    result = manage("backfill", "wait", JOB, "--timeout", "0.5")
    assert result.returncode == 5
    assert "timed out" in result.stderr and JOB in result.stderr


def test_status_reports_percent_rate_eta_batch_size_and_report(manage):
    make_widgets(300)
    assert manage("backfill", "run", JOB, "--batch-size", "100").returncode == 0
    result = manage("backfill", "status", JOB)
    assert result.returncode == 0
    assert "finished" in result.stdout and "100.0%" in result.stdout and "300/300" in result.stdout
    assert "widgets_touched" in result.stdout


# -- the admin --------------------------------------------------------------------------------


def staff(username: str, operate: bool) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    if operate:
        user.user_permissions.add(Permission.objects.get(codename="operate_jobrun"))
    return user


def test_admin_shows_runs_with_progress_and_actions_only_to_operators(client):
    make_widgets(10)
    run = control.create_run(JOB)
    url = reverse("admin:migrations_worker_jobrun_changelist")

    client.force_login(staff("viewer", operate=False))
    page = client.get(url)
    assert page.status_code == 200
    assert b"<progress" in page.content and JOB.encode() in page.content
    assert b"pause_runs" not in page.content
    refused = client.post(url, {"action": "pause_runs", "_selected_action": [run.pk], "post": "yes"})
    assert refused.status_code == 200  # Django answers an unknown action with the list again
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING

    client.force_login(staff("operator", operate=True))
    page = client.get(url)
    assert b"pause_runs" in page.content
    done = client.post(url, {"action": "pause_runs", "_selected_action": [run.pk], "post": "yes"},
                follow=True)
    assert done.status_code == 200
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PAUSED
    assert run.events.filter(to_status="paused", actor="admin:operator").exists()


def test_admin_is_closed_to_users_who_are_not_staff(client):
    client.force_login(User.objects.create_user("plain"))  # logged in, not staff
    page = client.get(reverse("admin:migrations_worker_jobrun_changelist"))
    assert page.status_code == 302
    assert "/admin/login/" in page["Location"]


def test_admin_operator_cancels_a_paused_run_and_retries_a_failed_one(client):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tests.engine_app.models import Knob

    make_widgets(300)
    url = reverse("admin:migrations_worker_jobrun_changelist")
    client.force_login(staff("operator", operate=True))

    Knob.objects.create(name="fail_at", value=150)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB, "--batch-size", "100")
    failed = JobRun.objects.get(job_name=JOB)
    assert failed.status == RunStatus.FAILED
    page = client.get(url)
    # The error, on the runs list: the key the run set aside, and why.
    assert b"1 quarantined key(s) left open: key 150 (RuntimeError: injected failure at key 150)" in (
        page.content)

    Knob.objects.all().delete()
    client.post(url, {"action": "retry_runs", "_selected_action": [failed.pk], "post": "yes"},
                follow=True)
    failed.refresh_from_db()
    assert failed.status == RunStatus.RUNNING
    requeued = failed.batches.get(status="pending", attempts=0)  # the quarantined key's batch
    assert (requeued.start_key, requeued.end_key) == (149, 150)
    assert not failed.batches.filter(status="quarantined").exists()

    client.post(url, {"action": "pause_runs", "_selected_action": [failed.pk], "post": "yes"},
                follow=True)
    client.post(url, {"action": "cancel_runs", "_selected_action": [failed.pk], "post": "yes"},
                follow=True)
    failed.refresh_from_db()
    assert failed.status == RunStatus.CANCELLING  # honoured by the worker between batches
    steps = list(failed.events.order_by("id").values_list("to_status", "actor"))
    assert ("running", "admin:operator") in steps
    assert ("pausing", "admin:operator") in steps
    assert ("cancelling", "admin:operator") in steps


def test_admin_refuses_an_action_the_run_is_not_in_a_state_for(client):
    make_widgets(10)
    run = control.create_run(JOB)
    client.force_login(staff("operator", operate=True))
    url = reverse("admin:migrations_worker_jobrun_changelist")
    page = client.post(url, {"action": "retry_runs", "_selected_action": [run.pk], "post": "yes"},
                follow=True)
    assert b"only a failed run can be retried" in page.content
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING


# A status each control refuses, in which the run is still the job's active run.
REFUSED_IN = {"pause": RunStatus.PAUSED, "resume": RunStatus.PENDING,
              "cancel": RunStatus.CANCELLING, "retry": RunStatus.PENDING}


@pytest.mark.parametrize("verb", list(CONTROLS))
def test_backfill_and_the_admin_refuse_a_control_in_the_words_of_the_one_table(
    manage, client, verb
):
    ctl = CONTROLS[verb]
    assert REFUSED_IN[verb] not in ctl.allowed
    make_widgets(10)
    run = control.create_run(JOB)
    JobRun.objects.filter(pk=run.pk).update(status=REFUSED_IN[verb])
    before = snapshot()
    said = f"run #{run.pk} of {JOB} is {REFUSED_IN[verb]}; {ctl.refusal}"

    result = manage("backfill", verb, JOB)
    assert result.returncode == 3
    assert said in result.stderr
    client.force_login(staff("operator", operate=True))
    page = client.post(reverse("admin:migrations_worker_jobrun_control", args=[run.pk, verb]),
                       {"post": "yes"}, follow=True)
    assert said.lower() in page.content.decode().lower()  # the admin capitalises its messages
    assert snapshot() == before


def test_backfill_run_takes_tuning_options_for_a_new_run_and_refuses_them_for_an_active_one(manage):
    make_widgets(300)
    result = manage("backfill", "run", JOB, "--option", "batch_size=50", "--option",
                    "max_batch_size=50")
    assert result.returncode == 0, result.stdout + result.stderr
    run = JobRun.objects.get(job_name=JOB)
    assert run.options == {"batch_size": 50, "max_batch_size": 50}
    assert run.batches.count() == 6
    assert run.started_at is not None  # an inline run has a rate and an ETA, as a dispatched one

    pending = control.create_run(JOB)
    result = manage("backfill", "run", JOB, "--option", "pause_seconds=0.1")
    assert result.returncode == 3
    assert f"already has run #{pending.pk} (pending) with its own tuning" in result.stderr
    assert JobRun.objects.get(pk=pending.pk).status == RunStatus.PENDING
