"""What operators see on a fleet of targets: the status API, the metrics and the admin each
read the target asked for (`?database=NAME`), say which, and never mix one target's runs with
another's. `near` and `far` are the test targets of config/settings/test.py (labels: server
pg-first and pg-second)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connections

from migrations_worker.admin import ensure_operator
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.runs import control
from tests.engine_app.support import JOB, make_widgets
from tests.ops.test_status_api import scrape_every, staff

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])
RUNS = "/admin/migrations_worker/jobrun/"


def run_on(using: str, rows: int) -> JobRun:
    """A pending run of `rows` rows on target `using` (its estimate tells the targets apart)."""
    make_widgets(rows, using=using)
    return control.create_run(JOB, using=using)


@pytest.fixture
def two_targets() -> tuple[JobRun, JobRun]:
    return run_on("default", 10), run_on("near", 25)


@contextmanager
def unreachable(alias: str) -> Iterator[None]:
    """Target `alias` cannot be reached: its connection points at a port nothing listens on."""
    connection = connections[alias]
    connection.close()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = "1"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port


# -- the status API -------------------------------------------------------------------------------


def test_runs_json_reads_the_target_asked_for_and_every_answer_names_its_database(client, two_targets):
    default_run, near_run = two_targets
    client.force_login(staff())

    own = client.get("/ops/runs.json").json()
    assert own["database"] == "default"
    newest = own["runs"][0]  # (the test database's migrations may have left runs of their own)
    assert (newest["id"], newest["database"], newest["estimated_total"]) == (default_run.pk, "default", 10)
    assert {r["database"] for r in own["runs"]} == {"default"}

    near = client.get("/ops/runs.json?database=near").json()
    assert near["database"] == "near"
    listed = near["runs"][0]  # (an earlier test's worker may have left a run on near too)
    assert (listed["id"], listed["database"], listed["estimated_total"]) == (near_run.pk, "near", 25)
    assert listed["admin_url"] == f"{RUNS}{near_run.pk}/change/?database=near"
    assert {r["database"] for r in near["runs"]} == {"near"}
    far = client.get("/ops/runs.json?database=far").json()
    assert far["database"] == "far"
    assert {r["database"] for r in far["runs"]} <= {"far"}
    assert (near_run.pk, 25) not in {(r["id"], r["estimated_total"]) for r in far["runs"]}

    one = client.get(f"/ops/runs/{near_run.pk}.json?database=near").json()
    assert (one["id"], one["database"], one["estimated_total"]) == (near_run.pk, "near", 25)
    assert [e["to"] for e in one["events"]] == ["pending"]
    missing = client.get(f"/ops/runs/{near_run.pk}.json?database=far")
    assert missing.status_code == 404 and missing.json()["database"] == "far"


def test_runs_json_of_every_target_lists_each_target_and_all_their_runs(client, two_targets):
    default_run, near_run = two_targets
    client.force_login(staff())
    every = client.get("/ops/runs.json?database=*").json()
    assert every["database"] == "*"
    assert {t["name"]: (t["server"], t["reachable"]) for t in every["targets"]} == {
        "default": (every["targets"][0]["server"], True), "far": ("pg-second", True),
        "near": ("pg-first", True)}
    assert {(r["database"], r["id"], r["estimated_total"]) for r in every["runs"]
            if r["job"] == JOB} == {("default", default_run.pk, 10), ("near", near_run.pk, 25)}


def test_a_target_that_cannot_be_reached_is_named_and_the_others_still_answer(client, two_targets):
    client.force_login(staff())
    with unreachable("far"):
        every = client.get("/ops/runs.json?database=*").json()
        metrics = scrape_every(client)
    far = next(t for t in every["targets"] if t["name"] == "far")
    assert far["reachable"] is False and far["error"].startswith("OperationalError")
    assert {r["database"] for r in every["runs"]} == {"default", "near"}
    assert metrics[("mw_target_up", (("server", "pg-second"), ("target", "far")))] == 0
    assert metrics[("mw_target_up", (("server", "pg-first"), ("target", "near")))] == 1
    assert not [key for key in metrics if ("target", "far") in key[1] and key[0] != "mw_target_up"]
    assert metrics[("mw_runs_active", (("server", "pg-first"), ("target", "near")))] == 1


@pytest.mark.parametrize("url", ["/ops/runs.json?database=nowhere", "/ops/runs/1.json?database=nowhere",
                                 "/ops/runs/1.json?database=*"])
def test_an_unknown_database_is_a_400_naming_the_declared_targets(client, url):
    client.force_login(staff())
    response = client.get(url)
    assert response.status_code == 400
    assert response.json()["targets"] == ["default", "far", "near"]
    assert "the declared targets are default, far, near" in response.json()["error"]


# -- the metrics ----------------------------------------------------------------------------------


def test_metrics_carry_every_target_each_sample_labelled_with_its_target_and_server(client, two_targets):
    default_run, near_run = two_targets
    client.force_login(staff())
    metrics = scrape_every(client)
    servers = {dict(labels)["target"]: dict(labels)["server"] for name, labels in metrics
               if name == "mw_target_up"}
    assert servers == {"default": servers["default"], "near": "pg-first", "far": "pg-second"}
    assert all({"target", "server"} <= set(dict(labels)) for _, labels in metrics)
    assert {dict(labels)["target"]: value for (name, labels), value in metrics.items()
            if name == "mw_target_up"} == {"default": 1, "near": 1, "far": 1}
    for target, run, rows in (("default", default_run, 10), ("near", near_run, 25)):
        at = (("job", JOB), ("run", str(run.pk)), ("server", servers[target]), ("target", target))
        assert metrics[("mw_run_rows_estimated", at)] == rows
        assert metrics[("mw_runs_active", at[2:])] == 1
    assert metrics[("mw_runs_active", (("server", "pg-second"), ("target", "far")))] == 0


# -- the admin ------------------------------------------------------------------------------------


def test_the_admin_shows_a_run_on_far_and_an_operator_pauses_it_there(client):
    client.force_login(ensure_operator("operator", "pw"))
    own = run_on("default", 10)
    far = run_on("far", 30)

    listing = client.get(f"{RUNS}?database=far").content.decode()
    assert re.search(r"Target: <b>far</b> \(server pg-second", listing)
    assert "~30" in listing and "~10" not in listing
    assert 'href="?database=near"' in listing  # the selector offers the other targets

    page = client.get(f"{RUNS}{far.pk}/change/?_changelist_filters=database%3Dfar").content.decode()
    assert "Target: <b>far</b>" in page and "30" in page
    assert f"{RUNS}{far.pk}/control/pause/?database=far" in page

    ask = client.post(f"{RUNS}?database=far", {"action": "pause_runs", "_selected_action": [far.pk]})
    assert "Pause: are you sure?" in ask.content.decode()
    assert JobRun.objects.using("far").get(pk=far.pk).status == RunStatus.PENDING
    done = client.post(f"{RUNS}?database=far", {"action": "pause_runs", "_selected_action": [far.pk],
                                                "post": "yes"}, follow=True)
    assert f"{JOB} #{far.pk}: pause requested (now paused)" in done.content.decode().lower()
    assert JobRun.objects.using("far").get(pk=far.pk).status == RunStatus.PAUSED
    assert far.events.using("far").filter(to_status="paused", actor="admin:operator").exists()
    assert JobRun.objects.get(pk=own.pk).status == RunStatus.PENDING  # default's run untouched

    resumed = client.post(f"{RUNS}{far.pk}/control/resume/?database=far", {"post": "yes"})
    assert resumed["Location"] == f"{RUNS}{far.pk}/change/?database=far"
    assert JobRun.objects.using("far").get(pk=far.pk).status == RunStatus.RUNNING


@pytest.mark.parametrize("listing", ["jobbatch", "quarantinedkey"])
def test_the_batches_and_keys_lists_show_the_chosen_target_and_offer_its_runs(client, listing):
    client.force_login(ensure_operator("operator", "pw"))
    far = run_on("far", 30)
    page = client.get(f"/admin/migrations_worker/{listing}/?database=far")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Target: <b>far</b>" in html
    if listing == "jobbatch":  # its run filter lists the runs of the target shown
        assert f'href="?database=far&amp;run={far.pk}"' in html


def test_the_admin_refuses_a_database_that_is_not_a_target(client):
    client.force_login(ensure_operator("operator", "pw"))
    assert client.get(f"{RUNS}?database=nowhere").status_code == 400
    assert client.get(f"{RUNS}1/control/pause/?database=nowhere").status_code == 400
