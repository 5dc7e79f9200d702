"""The read-only status API (/ops/runs.json, /ops/runs/<id>.json, /ops/metrics) for dashboards and
deploy pipelines, and the log lines that answer "what happened to job X at 03:12"."""

import logging
import secrets
import time
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from migrations_worker.checks import status_token_is_long_enough
from migrations_worker.models import HoldKind, JobRun
from migrations_worker.ops import metrics as metrics_module
from migrations_worker.runs import control, runner, states
from migrations_worker.runs.progress import eta_errors
from tests.engine_app.support import JOB, make_widgets

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])
ENDPOINTS = ("/ops/runs.json", "/ops/runs/1.json", "/ops/metrics")
FIXED_100 = {"batch_size": 100, "min_batch_size": 100, "max_batch_size": 100}
TOKEN = secrets.token_urlsafe(32)  # as docs/operating.md says to make one


def staff(username: str = "watcher", view: bool = True) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    if view:
        user.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    return user


@pytest.fixture
def finished_and_pending():
    """A finished run of 300 rows in three batches, and a second run of the job still pending."""
    make_widgets(300)
    control.create_run(JOB, options=FIXED_100)
    call_command("backfill", "run", JOB)
    finished = JobRun.objects.get(job_name=JOB)
    make_widgets(50, first_id=301)
    pending = control.create_run(JOB)
    return finished, pending


# -- who may read it ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ENDPOINTS)
def test_anonymous_request_is_refused_with_401_and_says_how_to_authenticate(client, url):
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "log in to the admin as staff" in response.json()["error"]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_logged_in_user_who_is_not_staff_is_refused_with_403(client, url):
    # Logged in and holding the view permission, but not staff (or no longer: taking is_staff
    # away leaves a user's permissions as they were).
    plain = User.objects.create_user("plain")
    plain.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    client.force_login(plain)
    response = client.get(url)
    assert response.status_code == 403
    assert "forbidden" in response.json()["error"]


def test_staff_without_permission_to_view_runs_is_refused(client):
    client.force_login(staff(view=False))
    assert client.get("/ops/runs.json").status_code == 403


def test_the_status_token_from_the_environment_lets_a_pipeline_in(client, settings):
    settings.MW_STATUS_TOKEN = TOKEN
    assert client.get("/ops/runs.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get("/ops/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get("/ops/runs.json", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/ops/runs.json", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 403


def test_a_status_token_shorter_than_32_characters_fails_the_check_and_is_never_accepted(
        client, settings):
    settings.MW_STATUS_TOKEN = short = "s3cret-token"
    errors = status_token_is_long_enough()
    assert [error.id for error in errors] == ["migrations_worker.E007"]
    assert "12 characters long; it must have at least 32" in errors[0].msg
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in errors[0].hint
    assert client.get("/ops/runs.json", HTTP_AUTHORIZATION=f"Bearer {short}").status_code == 403
    settings.MW_STATUS_TOKEN = TOKEN
    assert status_token_is_long_enough() == []
    settings.MW_STATUS_TOKEN = ""
    assert status_token_is_long_enough() == []


def test_a_short_status_token_stops_manage_py_before_it_runs(settings):
    settings.MW_STATUS_TOKEN = "x" * 31
    with pytest.raises(SystemCheckError, match="E007"):
        call_command("check")


def test_without_a_configured_token_no_token_is_accepted(client, settings):
    settings.MW_STATUS_TOKEN = ""
    assert client.get("/ops/runs.json", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get("/ops/runs.json", HTTP_AUTHORIZATION="Bearer anything").status_code == 403


def test_the_api_is_read_only(client):
    client.force_login(staff())
    assert client.post("/ops/runs.json").status_code == 405
    assert client.delete("/ops/runs.json").status_code == 405


# -- what it says ---------------------------------------------------------------------------------


def test_runs_json_lists_every_run_newest_first_with_state_and_progress(client, finished_and_pending):
    finished, pending = finished_and_pending
    client.force_login(staff())
    response = client.get("/ops/runs.json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    runs = response.json()["runs"]
    assert [r["id"] for r in runs][:2] == [pending.pk, finished.pk]
    done = next(r for r in runs if r["id"] == finished.pk)
    assert done["job"] == JOB
    assert done["status"] == "finished" and done["active"] is False
    assert done["percent"] == 100.0
    assert (done["rows_done"], done["estimated_total"]) == (300, 300)
    assert done["batches"] == {"pending": 0, "running": 0, "succeeded": 3, "failed": 0,
                               "quarantined": 0}
    assert done["quarantined_keys"] == {"open": 0, "total": 0}
    assert done["report"] == {"widgets_touched": 300}
    assert done["eta_seconds"] == 0.0 and "rows_per_second" in done
    assert done["admin_url"] == f"/admin/migrations_worker/jobrun/{finished.pk}/change/"
    waiting = next(r for r in runs if r["id"] == pending.pk)
    assert waiting["status"] == "pending" and waiting["active"] is True
    assert (waiting["percent"], waiting["rows_done"], waiting["estimated_total"]) == (0.0, 0, 350)
    assert waiting["keys"] == {"min": 1, "max": 350, "cursor": 0}


def test_runs_json_filters_by_job_status_and_activity(client, finished_and_pending):
    finished, pending = finished_and_pending
    client.force_login(staff())
    ids = lambda query: [r["id"] for r in client.get(f"/ops/runs.json?{query}").json()["runs"]]  # noqa: E731
    assert ids("active=1") == [pending.pk]
    assert ids("status=finished,failed") == [finished.pk]
    assert ids("job=no_such_job") == []
    assert set(ids(f"job={JOB}")) == {finished.pk, pending.pk}


def test_a_runs_quarantined_keys_are_counted_open_and_in_all(client):
    from django.core.management.base import CommandError

    from tests.engine_app.models import Knob

    make_widgets(300)
    control.create_run(JOB, options=FIXED_100)
    Knob.objects.create(name="fail_at", value=150)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB)
    run = JobRun.objects.get(job_name=JOB)
    client.force_login(staff())

    def seen() -> tuple[dict, dict, dict]:
        (listed,) = [r for r in client.get("/ops/runs.json").json()["runs"] if r["id"] == run.pk]
        one = client.get(f"/ops/runs/{run.pk}.json").json()
        return listed["quarantined_keys"], one["quarantined_keys"], one["batches"]

    assert seen() == ({"open": 1, "total": 1}, {"open": 1, "total": 1},
                      {"pending": 0, "running": 0, "succeeded": 8, "failed": 0, "quarantined": 1})
    call_command("backfill", "quarantine", JOB, "--accept")
    assert JobRun.objects.get(pk=run.pk).status == "finished"
    assert seen()[:2] == ({"open": 0, "total": 1}, {"open": 0, "total": 1})


def test_one_runs_json_adds_its_latest_batches_and_status_log(client, finished_and_pending):
    finished, _ = finished_and_pending
    client.force_login(staff())
    run = client.get(f"/ops/runs/{finished.pk}.json").json()
    assert [(b["start_key"], b["end_key"], b["rows"]) for b in run["latest_batches"]] == [
        (200, 300, 100), (100, 200, 100), (0, 100, 100)]
    assert [e["to"] for e in run["events"]] == ["finished", "running", "pending"]
    assert run["events"][0]["message"].startswith("verified: 0 rows left")
    assert client.get("/ops/runs/999999.json").status_code == 404


def test_a_hold_reason_and_its_kind_show_while_the_hold_lasts(client, finished_and_pending):
    _, pending = finished_and_pending
    JobRun.objects.filter(pk=pending.pk).update(
        hold_reason="2 deploy step(s) backing off from a lock: stepping aside",
        hold_kind=HoldKind.DDL_BACKOFF, hold_until=timezone.now() + timedelta(minutes=1),
    )
    client.force_login(staff())
    run = client.get(f"/ops/runs/{pending.pk}.json").json()
    assert run["hold_reason"] == "2 deploy step(s) backing off from a lock: stepping aside"
    assert run["hold_kind"] == "ddl_backoff"
    metrics = scrape(client)
    assert metrics[("mw_run_on_hold", (("job", JOB), ("run", str(pending.pk))))] == 1
    assert metrics[("mw_run_hold_reason", (("check", "ddl_backoff"), ("job", JOB),
                                           ("run", str(pending.pk))))] == 1

    # A hold stored without a kind (an engine from before kinds, mid rolling deploy) is "other".
    JobRun.objects.filter(pk=pending.pk).update(hold_kind="")
    assert client.get(f"/ops/runs/{pending.pk}.json").json()["hold_kind"] == "other"
    assert scrape(client)[("mw_run_hold_reason", (("check", "other"), ("job", JOB),
                                                  ("run", str(pending.pk))))] == 1

    JobRun.objects.filter(pk=pending.pk).update(hold_until=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/ops/runs/{pending.pk}.json").json()["hold_reason"] == ""


def scrape_every(client, accept: str = "") -> dict[tuple[str, tuple], float]:
    """/ops/metrics read back by prometheus_client's own parser: {(sample, labels): value}."""
    response = client.get("/ops/metrics", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    parse = (openmetrics_parser.text_string_to_metric_families if "openmetrics" in accept
             else text_string_to_metric_families)
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in parse(response.content.decode()) for sample in family.samples}


def scrape(client, accept: str = "", target: str = "default") -> dict[tuple[str, tuple], float]:
    """The samples of one target, without the labels every sample of it carries."""
    return {(name, tuple(pair for pair in labels if pair[0] not in ("target", "server"))): value
            for (name, labels), value in scrape_every(client, accept).items()
            if dict(labels)["target"] == target}


def test_metrics_give_the_latest_run_of_each_job_through_prometheus_client(client, finished_and_pending):
    _, pending = finished_and_pending
    call_command("backfill", "run", JOB)  # the pending run, now finished
    client.force_login(staff())
    response = client.get("/ops/metrics")
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE mw_run_rows_done gauge" in response.content.decode()
    metrics = scrape(client)
    run = (("job", JOB), ("run", str(pending.pk)))
    assert metrics[("mw_run_info", (*run, ("status", "finished")))] == 1
    assert metrics[("mw_run_rows_done", run)] == 350
    assert metrics[("mw_run_rows_estimated", run)] == 350
    assert metrics[("mw_run_progress_ratio", run)] == 1.0
    assert metrics[("mw_run_batches", (*run, ("status", "succeeded")))] == pending.batches.count()
    assert metrics[("mw_run_batches", (*run, ("status", "failed")))] == 0
    assert metrics[("mw_run_on_hold", run)] == 0
    assert metrics[("mw_runs", (("status", "finished"),))] == 2
    assert metrics[("mw_runs", (("status", "running"),))] == 0
    assert metrics[("mw_runs_active", ())] == 0
    assert not [key for key in metrics if ("run", str(pending.pk - 1)) in key[1]]  # latest only


def test_metrics_count_holds_by_health_check_and_give_the_eta_error_of_a_finished_run(client):
    make_widgets(1_000)
    control.create_run(JOB, options={**FIXED_100})
    call_command("backfill", "run", JOB)
    run = control.latest_run(JOB)
    for kind, reason in ((HoldKind.REPLICA_LAG, "standby 'replica_a' is 40.0s and 2.0 MB behind"),
                         (HoldKind.REPLICA_LAG, "standby 'replica_a' is 41.0s and 2.1 MB behind"),
                         (HoldKind.LONG_TRANSACTION, "transaction open for 700s (pid 42)"),
                         (HoldKind.DDL_BACKOFF, "1 deploy step(s) backing off from a lock")):
        states.record(run, "running", "running", "test", f"on hold: {reason}", hold_kind=kind,
                      using="default")
    states.record(run, "running", "running", "test", "hold cleared", using="default")
    # The kind is what counts, never the text: a reason worded like another kind's changes nothing.
    states.record(run, "running", "running", "test", "on hold: standby 'x' is behind",
                  hold_kind=HoldKind.LOCK_WAITERS, using="default")
    errors = eta_errors(run)
    assert [e.checkpoint for e in errors] == [10, 50]

    client.force_login(staff())
    metrics = scrape(client)
    labels = (("job", JOB), ("run", str(run.pk)))
    holds = {dict(key[1])["check"]: value for key, value in metrics.items()
             if key[0] == "mw_run_hold_events_total"}
    assert holds == {"replica_lag": 2, "long_transaction": 1, "ddl_backoff": 1, "lock_waiters": 1}
    for error in errors:
        at = (("checkpoint", str(error.checkpoint)), *labels)
        assert metrics[("mw_run_eta_error_ratio", at)] == pytest.approx(error.error_ratio)
        assert metrics[("mw_run_eta_error_seconds", at)] == pytest.approx(error.error_seconds)


def test_metrics_count_undo_runs_and_the_rows_the_latest_undo_left_as_they_were(client):
    """Undo runs are runs like any (`backfill undo` starts them); the metrics say which job each
    puts back, and how many rows the latest found changed since and kept (the `*_kept`
    counters of its report), the figure an operator must read before trusting the undo."""
    undo = "ticker_dedup_undo"
    cancelled = control.create_run(undo)
    JobRun.objects.filter(pk=cancelled.pk).update(status="cancelled")
    latest = control.create_run(undo)
    JobRun.objects.filter(pk=latest.pk).update(
        status="finished", report={"groups_undone": 3, "rows_changed_since_kept": 2,
                                   "writes_since_kept": 1, "rows_moved_back": 9})

    client.force_login(staff())
    metrics = scrape(client)
    runs = {dict(labels)["status"]: (dict(labels)["undoes"], value)
            for (name, labels), value in metrics.items() if name == "mw_undo_runs"}
    assert runs == {"cancelled": ("ticker_dedup", 1), "finished": ("ticker_dedup", 1)}
    assert metrics[("mw_undo_rows_kept", (("job", undo), ("run", str(latest.pk)),
                                          ("undoes", "ticker_dedup")))] == 3
    assert not any(name.startswith("mw_undo") and dict(labels)["job"] == JOB
                   for name, labels in metrics)


def test_metrics_speak_openmetrics_to_a_scraper_that_asks_for_it(client, finished_and_pending):
    client.force_login(staff())
    accept = "application/openmetrics-text; version=1.0.0"
    response = client.get("/ops/metrics", HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")
    assert scrape(client, accept)[("mw_runs_active", ())] == 1


def test_every_metric_family_has_a_unique_mw_name_and_help():
    names = [family.name for family in metrics_module.FAMILIES]
    assert len(names) == len(set(names))
    assert all(name.startswith("mw_") and family.help for name, family in
               zip(names, metrics_module.FAMILIES, strict=True))


# -- the log stream -------------------------------------------------------------------------------


def test_each_batch_and_each_status_change_and_hold_is_one_log_line_naming_the_run(
    caplog, test_database_url
):
    make_widgets(200)
    caplog.set_level(logging.INFO, logger="migrations_worker")
    control.create_run(JOB, options=FIXED_100)
    call_command("backfill", "run", JOB)
    run = JobRun.objects.get(job_name=JOB)
    lines = [r.getMessage() for r in caplog.records]
    batch_line = next(line for line in lines if "batch=(100,200]" in line)
    for field in (f"run={run.pk}", f"job={JOB}", "rows=100", "duration_ms=", "batch_size=100",
                  "attempt=1"):
        assert field in batch_line
    assert any(f"run={run.pk} job={JOB} status=finished from=running" in line for line in lines)

    # A health hold: another session's transaction stays open longer than this run allows.
    make_widgets(10, first_id=201)
    held = control.create_run(JOB, options={"max_transaction_seconds": 0.2, "hold_seconds": 1})
    JobRun.objects.filter(pk=held.pk).update(status="running")
    with psycopg.connect(test_database_url) as idle:  # not autocommit: a transaction is open
        idle.execute("SELECT 1")
        time.sleep(0.5)
        caplog.clear()
        outcome = runner.RunWorker(held.pk, name="test-worker").work()
    assert outcome.kind == runner.Kind.HOLD
    hold_line = next(r.getMessage() for r in caplog.records if "on hold" in r.getMessage())
    assert f"run={held.pk} job={JOB} status=running" in hold_line
    assert "on hold: transaction open for" in hold_line
    assert held.events.get(message__startswith="on hold").hold_kind == HoldKind.LONG_TRANSACTION
