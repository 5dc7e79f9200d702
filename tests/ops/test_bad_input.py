"""Operators' mistakes and hostile input, at every entry point: each gets a clear error and a
telling exit code, and changes nothing. Also the environment being wrong: a database that is not
PostgreSQL (or too old), a broker that is down, two operators doing conflicting things at once.

Exit codes are the documented ones: backfill 2 bad input, 3 conflict, 6 broker unreachable;
migrate_online 1 refused, argparse's 2 for a malformed command line.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse

from migrations_worker.checks import database_problem, version_problem
from migrations_worker.deploy.lock import DEPLOY_LOCK_KEY
from migrations_worker.models import BatchStatus, JobRun, JobRunEvent, Resolution, RunStatus
from migrations_worker.runs import control, dispatch
from tests.conftest import ROOT
from tests.engine_app.support import GATED, JOB, applied, make_widgets

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE_NAME = "x'; DROP TABLE engine_app_widget; --"
DOWN_BROKER = {"TEST_REDIS_URL": "redis://127.0.0.1:1/0"}


def snapshot() -> tuple:
    """Everything an operator command could change: runs, their batches and their log."""
    return (
        list(JobRun.objects.order_by("id").values_list("id", "status", "batch_size", "dispatch_epoch")),
        # By id: a batch row rewritten in place (its totals folded) moves in the heap, and an
        # unordered read would then list the same batches in another order.
        list(JobRun.objects.order_by("id", "batches__id")
             .values_list("batches__id", "batches__status", "batches__attempts")),
        JobRunEvent.objects.count(),
    )


def widget_table_exists() -> bool:
    return "engine_app_widget" in connection.introspection.table_names()


# -- backfill -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["start", "pause", "resume", "cancel", "retry", "run", "status",
                                    "wait"])
@pytest.mark.parametrize("name", ["no_such_job", HOSTILE_NAME, "j" * 5_000, ""])
def test_every_backfill_action_refuses_an_unknown_or_hostile_job_name(manage, action, name):
    make_widgets(10)
    before = snapshot()
    result = manage("backfill", action, name)
    assert result.returncode == 2, result.stderr
    assert "unknown job" in result.stderr and "known jobs:" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot() == before and widget_table_exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", JOB, "--batch-size", "1e3"], "must be a whole number"),
        (["start", JOB, "--batch-size", "9" * 30], "above this job's maximum"),
        (["start", JOB, "--workers", "0"], "must be positive, got 0"),
        (["start", JOB, "--workers", "33"], "workers must be between 1 and 32"),
        (["start", JOB, "--workers", "9" * 30], "workers must be between 1 and 32"),
        (["start", JOB, "--option", "pause_seconds=-1"], "pause_seconds must be at least 0"),
        (["start", JOB, "--option", "lease_seconds=1e999"], "lease_seconds must be more than 0"),
        (["start", JOB, "--option", "hold_seconds=1e300"], "hold_seconds must be at least 0"),
        (["start", JOB, "--option", 'lock_timeout_ms="1s; SELECT 1"'], "must be a whole number"),
        (["start", JOB, "--option", "statement_timeout_ms=" + "9" * 20], "at most 2147483647"),
        (["start", JOB, "--option", "max_attempts=0"], "max_attempts must be at least 1"),
        (["start", JOB, "--option", "batch_size=null"], "must be a whole number"),
        (["start", JOB, "--option", "max_batch_size=" + "9" * 12, "--batch-size", "9" * 12],
         "max_batch_size must be at least 1 and at most 10000000"),
        (["start", JOB, "--option", "=1"], "unknown tuning option(s): "),
        (["run", JOB, "--batch-size", "-1"], "must be positive, got -1"),
        (["wait", JOB, "--timeout", "-1"], "must be a finite number of seconds"),
        (["wait", JOB, "--timeout", "nan"], "must be a finite number of seconds"),
        (["wait", JOB, "--timeout", "soon"], "must be a number of seconds"),
        ([], "the following arguments are required: ACTION"),
        (["start"], "the following arguments are required: name"),
        (["wait"], "the following arguments are required: NAME"),
        (["status", "--watch", "--json", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_backfill_refuses_bad_numbers_options_and_missing_arguments_and_changes_nothing(
    manage, args, message
):
    make_widgets(10)
    before = snapshot()
    result = manage("backfill", *args, env=DOWN_BROKER)  # nothing may get as far as the broker
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot() == before


def test_three_simultaneous_starts_of_one_job_make_exactly_one_run(manage, test_database_url):
    make_widgets(10)
    env = {"DATABASE_URL": test_database_url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "backfill", "start", JOB],
                         cwd=ROOT, env={**__import__("os").environ, **env},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 3, 3], results
    assert all("already has run #" in err or "started at the same time" in err
               for code, err in results if code == 3)
    assert JobRun.objects.filter(job_name=JOB).count() == 1


def test_two_simultaneous_resumes_of_a_paused_run_dispatch_it_once():
    make_widgets(10)
    run = control.create_run(JOB)
    control.pause(run, actor="test")
    outcomes: list = []
    barrier = threading.Barrier(2)

    def resume() -> None:
        from django.db import connections

        try:
            stale = JobRun.objects.get(pk=run.pk)  # both operators' screens say "paused"
            barrier.wait()
            outcomes.append(dispatch.resume(stale, actor="test").dispatch_epoch)
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(o, int) for o in outcomes) == 1, outcomes
    refused = next(o for o in outcomes if not isinstance(o, int))
    assert "only a paused run can be resumed" in str(refused)
    assert JobRun.objects.get(pk=run.pk).dispatch_epoch == 1
    assert run.events.filter(message__startswith="resumed").count() == 1


# -- a broker that is down ---------------------------------------------------------------------------


def test_resume_and_retry_with_the_broker_down_say_so_and_leave_the_run_as_it_was(manage):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tests.engine_app.models import Knob

    JobRun.objects.all().delete()  # the run creating the test database enqueued, if this is first
    make_widgets(300)
    Knob.objects.create(name="fail_at", value=150)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB, "--batch-size", "100")
    Knob.objects.all().delete()
    before = snapshot()
    result = manage("backfill", "retry", JOB, env=DOWN_BROKER)
    assert result.returncode == 6, result.stderr
    assert "cannot reach the Celery broker" in result.stderr
    assert snapshot() == before  # the quarantined key was not requeued half-way
    failed = JobRun.objects.get(job_name=JOB)
    assert list(failed.batches.filter(status=BatchStatus.QUARANTINED)
                .values_list("start_key", "end_key")) == [(149, 150)]
    assert list(failed.quarantined.values_list("key", "resolution")) == [(150, Resolution.OPEN)]

    control.cancel(JobRun.objects.get(job_name=JOB), actor="test")
    paused = control.pause(control.create_run(JOB), actor="test")
    before = snapshot()
    result = manage("backfill", "resume", JOB, env=DOWN_BROKER)
    assert result.returncode == 6, result.stderr
    assert "cannot reach the Celery broker" in result.stderr
    assert snapshot() == before
    assert JobRun.objects.get(pk=paused.pk).status == RunStatus.PAUSED


def test_a_deploy_with_the_broker_down_leaves_the_gates_job_pending_and_says_why(
    seeded_before_the_gate, manage
):
    result = manage("migrate_online", env=DOWN_BROKER)
    assert result.returncode == 0, result.stderr
    assert "cannot be sent to workers: cannot reach the Celery broker" in result.stdout
    assert f"{GATED} waits for job {JOB}" in result.stdout
    run = JobRun.objects.get(job_name=JOB)
    # Nothing enqueued half-way: the run is not marked as sent; beat sends it once Redis is up.
    assert run.status == RunStatus.PENDING and run.dispatch_epoch == 0
    assert not applied("engine_app", "0003_require_touch_widgets")


def test_an_admin_resume_with_the_broker_down_is_refused_with_the_reason(client):
    from migrations_worker.celery import app

    make_widgets(10)
    run = control.pause(control.create_run(JOB), actor="test")
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrun", "operate_jobrun"]))
    client.force_login(user)
    url = reverse("admin:migrations_worker_jobrun_changelist")
    broker = app.conf.broker_url
    app.conf.broker_url = DOWN_BROKER["TEST_REDIS_URL"]
    try:
        page = client.post(url, {"action": "resume_runs", "_selected_action": [run.pk],
                                 "post": "yes"}, follow=True)
    finally:
        app.conf.broker_url = broker
    assert page.status_code == 200
    assert b"annot reach the Celery broker" in page.content  # the admin capitalises messages
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PAUSED


# -- migrate_online --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wait", "--poll", "0"], "--poll: must be more than 0 seconds"),
        (["--wait", "--poll", "-1"], "--poll: must be a finite number of seconds >= 0"),
        (["--wait", "--timeout", "-5"], "--timeout: must be a finite number of seconds >= 0"),
        (["--wait", "--timeout", "nan"], "--timeout: must be a finite number of seconds >= 0"),
        (["--wait-for-db", "-1"], "--wait-for-db: must be a finite number of seconds >= 0"),
        (["--preflight", "--min-age", "old"], "--min-age: must be a number of seconds, not 'old'"),
        (["--lock-wait", "1e999"], "--lock-wait: must be a finite number of seconds >= 0"),
        (["--check", "--wait"], "not allowed with argument"),
        (["--plan", "assets"], "unrecognized arguments: assets"),
        (["--json"], "--json goes with --plan, --check, --preflight, --postflight or --wait-for-db"),
        (["--wait", "--json"], "--json goes with --plan, --check, --preflight"),
    ],
)
def test_migrate_online_refuses_a_malformed_command_line_before_touching_the_database(
    manage, args, message
):
    recorded = MigrationCount.now()
    result = manage("migrate_online", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert MigrationCount.now() == recorded


class MigrationCount:
    @staticmethod
    def now() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM django_migrations")
            return cursor.fetchone()[0]


def test_a_second_deploy_waits_for_the_first_then_refuses_naming_it(manage, test_database_url):
    with psycopg.connect(test_database_url, autocommit=True, application_name="first-deploy") as first:
        first.execute("SELECT pg_advisory_lock(%s)", [DEPLOY_LOCK_KEY])
        result = manage("migrate_online", "--lock-wait", "1")
    assert result.returncode == 3, result.stdout + result.stderr  # a conflict
    assert "another migrate_online is running against this database (pid" in result.stderr
    assert "first-deploy" in result.stderr
    assert "waiting up to 1s for another migrate_online to end" in result.stdout


def test_a_second_deploy_goes_ahead_once_the_first_ends_within_its_lock_wait(
    manage, test_database_url
):
    first = psycopg.connect(test_database_url, autocommit=True, application_name="first-deploy")
    first.execute("SELECT pg_advisory_lock(%s)", [DEPLOY_LOCK_KEY])
    threading.Timer(2.0, first.close).start()  # the first deploy ends
    result = manage("migrate_online", "--lock-wait", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing pending" in result.stdout


# -- the database ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "shown"), [(120017, "12.17"), (90624, "9.6"), (100023, "10.23")]
)
def test_a_server_older_than_postgresql_13_is_named_and_refused(version, shown):
    # Only the version arithmetic is exercised with made-up numbers; the real server is below.
    assert f"PostgreSQL {shown} is too old" in version_problem(version)
    assert "needs PostgreSQL 13 or newer" in version_problem(version)


@pytest.mark.parametrize("version", [130000, 150004, 170002])
def test_postgresql_13_and_newer_are_accepted(version):
    assert version_problem(version) == ""


def test_the_real_server_passes_the_database_checks(manage):
    assert database_problem() == ""
    assert connection.pg_version >= 130000
    result = manage("check", "--database", "default", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "migrations_worker.E00" not in result.stdout + result.stderr


@pytest.fixture
def sqlite_settings(tmp_path):
    """A settings module that points the default database at SQLite (past the DATABASE_URL
    guard of the real settings, as a hand-edited settings file could)."""
    (tmp_path / "sqlite_settings.py").write_text(
        "from config.settings.test import *  # noqa\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
    )
    return {"DJANGO_SETTINGS_MODULE": "sqlite_settings",
            "PYTHONPATH": f"{tmp_path}:{ROOT}:{ROOT / 'engine'}:{ROOT / 'apps' / 'backend' / 'src'}"}


@pytest.mark.parametrize("command", [["migrate_online"], ["migrate_online", "--wait"],
                                     ["backfill", "list"], ["backfill", "run", JOB]])
def test_commands_refuse_a_database_that_is_not_postgresql_before_changing_anything(
    manage, sqlite_settings, command, tmp_path
):
    result = manage(*command, env=sqlite_settings)
    assert result.returncode == 2, result.stdout + result.stderr  # bad input: the configuration
    assert "'default' is sqlite; the online migration engine needs PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db.sqlite3").exists() or (tmp_path / "db.sqlite3").stat().st_size == 0


def test_the_system_check_reports_a_database_that_is_not_postgresql(manage, sqlite_settings):
    result = manage("check", env=sqlite_settings)
    assert result.returncode == 1
    assert "migrations_worker.E001" in result.stderr
    assert "Database 'default' is sqlite" in result.stderr


# -- the admin -----------------------------------------------------------------------------------------


@pytest.fixture
def operator_client(client):
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrun", "operate_jobrun"]))
    client.force_login(user)
    client.raise_request_exception = False  # an error is the 500 a hostile client would get
    return client


def not_a_run_id(value: str) -> str:
    return f"Not a run id: {value!r}. Nothing was changed; select the runs in the list."


@pytest.mark.parametrize(("selected", "answer"), [
    (["1; DROP TABLE engine_app_widget; --"], not_a_run_id("1; DROP TABLE engine_app_widget; --")),
    (["-1"], not_a_run_id("-1")),
    (["9" * 30], not_a_run_id("9" * 30)),
    (["{run}", "abc"], not_a_run_id("abc")),  # one bad id refuses the whole selection
    (["987654321"], "None of the selected runs exists (any more). Nothing was changed."),
    ([], None),  # nothing selected: the list again, nothing done
], ids=["sql", "negative", "too-big", "mixed", "no-such-run", "none"])
def test_an_admin_action_on_hostile_or_missing_selections_answers_clearly_and_changes_nothing(
    operator_client, selected, answer
):
    make_widgets(10)
    run = control.create_run(JOB)
    before = snapshot()
    changelist = reverse("admin:migrations_worker_jobrun_changelist")
    page = operator_client.post(changelist, {"action": "cancel_runs", "post": "yes",
                                             "_selected_action": [s.format(run=run.pk) for s in selected]},
                                follow=True)
    assert page.status_code == 200  # never a 500
    if answer is None:
        assert page.redirect_chain == [] and page.templates[0].name.endswith("change_list.html")
    else:
        assert page.redirect_chain == [(changelist, 302)]
        assert [str(message) for message in page.context["messages"]] == [answer]
    assert snapshot() == before and widget_table_exists()
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_an_unknown_admin_action_changes_nothing(operator_client):
    make_widgets(10)
    run = control.create_run(JOB)
    before = snapshot()
    page = operator_client.post(reverse("admin:migrations_worker_jobrun_changelist"),
                                {"action": "delete_everything", "_selected_action": [run.pk]},
                                follow=True)
    assert page.status_code == 200
    assert snapshot() == before
