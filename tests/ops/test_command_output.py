"""What the operator commands print: a run in one JSON shape wherever it appears, `--json` on every
command that prints a result, database text printed literally (never read as rich markup),
`--verbosity 0` for the result alone and `--no-color` / NO_COLOR for no terminal styling."""

import json
import secrets
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from migrations_worker.models import JobRun, Rollout, RunStatus
from migrations_worker.runs import control
from tests.engine_app.support import JOB, make_widgets

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])
FIXED_100 = {"batch_size": 100, "min_batch_size": 100, "max_batch_size": 100}
TOKEN = secrets.token_urlsafe(32)
MARKUP = "[bold]x[/bold] then [/x] and [red"  # what a database error may well contain
ANSI = "\x1b["


def out_of(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def json_of(*args: str):
    return json.loads(out_of(*args, "--json"))


@pytest.fixture
def finished_run() -> JobRun:
    make_widgets(300)
    control.create_run(JOB, options=FIXED_100)
    call_command("backfill", "run", JOB, verbosity=0, stdout=StringIO())
    return JobRun.objects.filter(job_name=JOB).latest("id")


@pytest.fixture
def failed_run() -> JobRun:
    """A failed run whose error, like the text of many PostgreSQL errors, holds square brackets."""
    run = control.create_run(JOB)
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error=f"boom: {MARKUP}")
    return run


# -- one shape for a run --------------------------------------------------------------------------


def test_backfill_status_json_and_the_status_api_print_a_run_with_the_same_keys_and_values(
    client, settings, finished_run
):
    settings.MW_STATUS_TOKEN = TOKEN
    (from_cli,) = json_of("backfill", "status", JOB)
    api = client.get("/ops/runs.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    (from_api,) = [run for run in api["runs"] if run["id"] == finished_run.pk]
    assert from_cli == from_api
    assert (from_cli["id"], from_cli["database"], from_cli["status"], from_cli["rows_done"]) == (
        finished_run.pk, "default", RunStatus.FINISHED, 300)
    one = client.get(f"/ops/runs/{finished_run.pk}.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert {k: v for k, v in one.json().items() if k in from_cli} == from_cli
    # Every other command that prints the run prints the same object.
    (listed,) = [job for job in json_of("backfill", "list") if job["job"] == JOB]
    assert listed["latest_run"] == from_cli
    assert json_of("backfill", "wait", JOB) == [from_cli]


# -- --json on every command that prints a result -------------------------------------------------


def test_backfill_list_json_names_every_job_its_table_and_latest_run_or_null(finished_run):
    jobs = {job["job"]: job for job in json_of("backfill", "list")}
    assert jobs[JOB]["table"] == "engine_app_widget"
    assert jobs[JOB]["database"] == "default"
    assert jobs[JOB]["latest_run"]["id"] == finished_run.pk
    assert all(job["latest_run"] is None for name, job in jobs.items() if name != JOB)


def test_backfill_steering_actions_print_the_run_they_leave_as_json():
    make_widgets(100)
    started = json_of("backfill", "start", JOB)  # no worker: the run waits on the queue
    assert (started["job"], started["status"], started["workers"]) == (JOB, RunStatus.RUNNING, 1)
    paused = json_of("backfill", "pause", JOB)
    assert (paused["id"], paused["status"]) == (started["id"], RunStatus.PAUSING)
    cancelled = json_of("backfill", "cancel", JOB)
    assert cancelled["id"] == started["id"]
    assert cancelled["status"] in (RunStatus.CANCELLING, RunStatus.CANCELLED)


def test_backfill_run_json_prints_only_the_finished_run():
    make_widgets(200)
    ran = json_of("backfill", "run", JOB, "--batch-size", "100")
    assert (ran["status"], ran["rows_done"], ran["batches"]["succeeded"]) == (
        RunStatus.FINISHED, 200, 2)


def test_migrate_online_preflight_postflight_and_wait_for_db_answer_in_json(test_database_url):
    assert json_of("migrate_online", "--wait-for-db", "5") == {"database": "default", "up": True}
    assert json_of("migrate_online", "--postflight") == {"database": "default", "problems": []}
    with psycopg.connect(test_database_url) as idle:  # a transaction left open
        idle.execute(f"SELECT '{MARKUP}'")
        found = json_of("migrate_online", "--preflight", "--min-age", "0")
    mine = [s for s in found["sessions"] if MARKUP in s["query"]]
    assert len(mine) == 1 and mine[0]["state"] == "idle in transaction"
    assert found["min_age_seconds"] == 0


def test_grant_app_role_dry_run_and_lint_migrations_answer_in_json():
    granted = json_of("grant_app_role", "json_probe_role", "--create", "--dry-run")
    assert (granted["role"], granted["dry_run"]) == ("json_probe_role", True)
    assert any(s.startswith("GRANT") for s in granted["statements"])
    linted = json_of("lint_migrations", "engine_app")
    assert set(linted) == {"migrations", "violations"}


# -- database text is printed as it is -------------------------------------------------------------


def test_an_error_holding_markup_is_printed_literally_by_status_wait_and_quarantine(failed_run):
    status = out_of("backfill", "status", JOB)
    assert "[/x]" in status and "[bold]x" in status
    with pytest.raises(CommandError) as waited:  # the run failed: stderr says so, literally
        out_of("backfill", "wait", JOB)
    assert f"last error: boom: {MARKUP}" in str(waited.value)
    quarantined = out_of("backfill", "quarantine", JOB)
    assert f"last error: boom: {MARKUP}" in quarantined


def test_a_session_query_holding_markup_is_printed_literally_by_preflight(test_database_url):
    with psycopg.connect(test_database_url) as idle:
        idle.execute(f"SELECT '{MARKUP}'")
        printed = out_of("migrate_online", "--preflight", "--min-age", "0")
    assert f"SELECT '{MARKUP}'" in " ".join(printed.split())


# -- --verbosity 0 ---------------------------------------------------------------------------------


def test_verbosity_0_prints_the_result_without_hints_or_progress():
    make_widgets(100)
    ran = out_of("backfill", "run", JOB, "--verbosity", "0").strip().splitlines()
    # The run's end and its report; no progress bar.
    assert [line.split(" ", 1)[0] for line in ran] == [JOB, "report:"]
    assert "finished: 100.0%" in ran[0]
    make_widgets(100, first_id=101)
    started = out_of("backfill", "start", JOB, "--verbosity", "0")
    assert started.startswith(f"started {JOB} run #") and "watch it" not in started
    assert len(started.strip().splitlines()) == 1


def test_verbosity_0_prints_nothing_but_the_error_of_a_run_that_cannot_be_worked(failed_run):
    out = StringIO()
    with pytest.raises(CommandError, match=r"fix the cause, then `backfill retry"):
        call_command("backfill", "run", JOB, "--verbosity", "0", stdout=out)
    assert out.getvalue() == ""


def test_migrate_online_at_verbosity_0_says_where_it_stopped_without_steps_or_hints(
    seeded_before_the_gate, manage
):
    result = manage("migrate_online", "--verbosity", "0")
    assert result.returncode == 0, result.stderr
    assert "pending: 1 migration(s) wait for data jobs" in result.stdout
    assert f"waits for job {JOB}" in result.stdout and "stopped cleanly" in result.stdout
    assert "applying" not in result.stdout and "watch it" not in result.stdout
    assert "python manage.py backfill" not in result.stdout


# -- --no-color and NO_COLOR -----------------------------------------------------------------------


def test_no_color_and_NO_COLOR_print_no_terminal_styling_where_colour_is_forced(manage, failed_run):
    forced = {"FORCE_COLOR": "1"}
    for command in (("backfill", "status", JOB), ("backfill", "list")):
        coloured = manage(*command, env=forced)
        assert coloured.returncode == 0, coloured.stderr
        assert ANSI in coloured.stdout  # rich styles a forced terminal
        plain = manage(*command, "--no-color", env=forced)
        assert ANSI not in plain.stdout
        assert ANSI not in manage(*command, env={**forced, "NO_COLOR": "1"}).stdout
        assert "[/x]" in plain.stdout or command[1] == "list"


def test_fleet_actions_print_the_rollout_as_the_fleet_api_does(client, settings):
    settings.MW_STATUS_TOKEN = TOKEN
    rollout = Rollout.objects.create(stage="pre", status="running", waves_spec="1,100%",
                                     parallel=1)
    paused = json_of("fleet", "pause", "--reason", "lunch")
    assert (paused["rollout"]["id"], paused["rollout"]["status"]) == (rollout.pk, "paused")
    assert json_of("fleet", "status") == paused
    api = client.get("/ops/fleet.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert api["rollout"] == paused["rollout"]
