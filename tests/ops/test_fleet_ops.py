"""Where people look at a fleet rollout: the admin's fleet page, `/ops/fleet.json` and the
`mw_fleet_*` metrics, all read from `fleet.view.snapshot`. The rollout is written straight into
the control database as its steps would have left it (no worker needed): three waves, the canary
passed; in wave 2 one target waiting for a data job at 40%, one held by its server, one failed
(the rollout halted); in wave 3 one skipped by an operator and one still pending."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from migrations_worker.fleet import rollouts, view
from migrations_worker.models import (
    Rollout,
    RolloutEvent,
    RolloutStatus,
    RolloutTarget,
    TargetStatus,
)
from migrations_worker.ops import fleet_metrics

pytestmark = pytest.mark.django_db(databases=["default", "near", "far"])
PAGE = "/admin/migrations_worker/rollout/"
CONTROL = PAGE + "control/"
JOB_AT_40 = {"job": "alerts_uuid", "run": 7, "status": "running", "percent": 40.0,
             "rows_done": 4000, "estimated_total": 10000, "eta_seconds": 90.0, "eta": "1m 30s",
             "hold": "", "error": ""}
HELD = "server pg-charlie:5432 does not answer: connection refused"
FAILED = "verification: index alerts_uuid_idx is invalid"
SKIPPED = "decommissioned on Friday, nothing to migrate"


def user(name: str, *codenames: str) -> User:
    found = User.objects.create_user(name, is_staff=True)  # force_login: no password
    found.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return found


def add(rollout: Rollout, name: str, wave: int, status: TargetStatus, **fields) -> RolloutTarget:
    now = timezone.now()
    started = None if status == TargetStatus.PENDING else now - timedelta(minutes=5)
    return RolloutTarget.objects.create(
        rollout=rollout, target=name, server=f"pg-{name}:5432", wave=wave,
        position=RolloutTarget.objects.filter(rollout=rollout).count(), status=status,
        attempt=0 if status == TargetStatus.PENDING else 1, started_at=started, **fields)


@pytest.fixture
def halted() -> Rollout:
    """The rollout of the module's docstring, halted at `delta` by the state machine's own halt."""
    rollout = Rollout.objects.create(stage="pre", waves_spec="1,50%,100%", parallel=4,
                                     actor="fleet")
    RolloutEvent.objects.create(rollout=rollout, kind="started", actor="fleet",
                                message="pre stage over 6 target(s) in 3 wave(s)")
    add(rollout, "alpha", 1, TargetStatus.PASSED, steps=2, finished_at=timezone.now(),
        detail="pre stage done and verified", applied=["assets.0042_alerts_uuid"])
    add(rollout, "bravo", 2, TargetStatus.WAITING, steps=3, jobs=[JOB_AT_40],
        detail="at the gates of alerts_uuid")
    add(rollout, "charlie", 2, TargetStatus.HELD, steps=1, detail=HELD)
    delta = add(rollout, "delta", 2, TargetStatus.FAILED, steps=1, error=FAILED,
                detail="verification failed", finished_at=timezone.now())
    add(rollout, "echo", 3, TargetStatus.SKIPPED, reason=SKIPPED, finished_at=timezone.now())
    add(rollout, "foxtrot", 3, TargetStatus.PENDING)
    RolloutEvent.objects.create(rollout=rollout, target="echo", kind="skipped",
                                actor="fleet", message=SKIPPED)
    rollouts.halt(rollout, delta, actor="worker@host")
    return rollout


@pytest.fixture
def viewer(client) -> User:
    """Staff who may view rollouts and runs, and change nothing."""
    found = user("viewer", "view_rollout", "view_jobrun")
    client.force_login(found)
    return found


@pytest.fixture
def operator(client) -> User:
    found = user("fleet-operator", "view_rollout", "change_rollout")
    client.force_login(found)
    return found


def sections(html: str) -> dict[str, str]:
    """Each fieldset of the page by its id: `mw-wave-1`, `mw-rollout-error`, `mw-timeline`."""
    return dict(re.findall(r'<fieldset class="module[^"]*" id="([\w-]+)"[^>]*>(.*?)</fieldset>',
                           html, re.S))


def row(html: str, target: str) -> str:
    found = re.search(rf'<tr [^>]*data-mw-fleet-target="{target}".*?</tr>', html, re.S)
    assert found, f"no row of {target}"
    return found.group(0)


# -- the admin's fleet page --------------------------------------------------------------------------


def test_the_fleet_page_shows_each_target_in_its_wave_with_the_canary_marked(client, viewer, halted):
    page = client.get(PAGE)
    assert page.status_code == 200
    parts = sections(page.content.decode())
    waves = {number: parts[f"mw-wave-{number}"] for number in (1, 2, 3)}
    assert "canary" in waves[1] and "canary" not in waves[2] + waves[3]
    where = {name: [n for n, html in waves.items() if f'data-mw-fleet-target="{name}"' in html]
             for name in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")}
    assert where == {"alpha": [1], "bravo": [2], "charlie": [2], "delta": [2], "echo": [3],
                     "foxtrot": [3]}
    for name, status in (("alpha", "passed"), ("bravo", "waiting"), ("charlie", "held"),
                         ("delta", "failed"), ("echo", "skipped"), ("foxtrot", "pending")):
        line = row(waves[int(where[name][0])], name)
        assert f'<span class="mw-status mw-status-{status}">{status}</span>' in line
        assert f"pg-{name}:5432" in line


def test_a_waiting_target_shows_its_job_progress_bar_rows_and_eta(client, viewer, halted):
    line = row(client.get(PAGE).content.decode(), "bravo")
    assert '<progress value="40.0" max="100"' in line
    assert "40.0%" in line and "4000 / ~10000 rows" in line
    assert "ETA <span data-mw-field=\"eta\">1m 30s</span>" in line
    assert "at the gates of alerts_uuid" in line


def test_a_held_target_says_which_server_and_a_skipped_one_the_operators_reason(client, viewer,
                                                                               halted):
    html = client.get(PAGE).content.decode()
    assert HELD in row(html, "charlie") and 'class="mw-hold"' in row(html, "charlie")
    assert f"operator's reason: {SKIPPED}" in row(html, "echo")
    assert FAILED in row(html, "delta")


def test_a_halted_rollout_shows_its_error_with_the_command_to_go_on_and_its_timeline(
        client, viewer, halted):
    parts = sections(client.get(PAGE).content.decode())
    assert "target delta (wave 2, server pg-delta:5432) failed its pre stage" in parts["mw-rollout-error"]
    assert "python manage.py fleet retry delta --reason" in parts["mw-rollout-error"]
    assert "python manage.py fleet skip delta --reason" in parts["mw-rollout-error"]
    assert 'mw-status-halted" id="mw-rollout-status" data-mw-status="halted">halted</span>' in \
        parts["mw-rollout"]
    timeline = parts["mw-timeline"]
    kinds = re.findall(r'<tr class="mw-fleet-event mw-fleet-event-(\w+)">', timeline)
    assert kinds == ["halted", "skipped", "started"]  # newest first
    assert SKIPPED in timeline and "worker@host" in timeline


def test_the_page_opens_an_older_rollout_by_id_and_lists_the_rollouts(client, viewer, halted):
    older = Rollout.objects.create(stage="post", status=RolloutStatus.DONE, waves_spec="1,100%",
                                   parallel=2, finished_at=timezone.now())
    Rollout.objects.filter(pk=older.pk).update(created_at=halted.created_at - timedelta(days=1))
    add(older, "alpha", 1, TargetStatus.PASSED)
    html = client.get(PAGE, {"rollout": older.pk}).content.decode()
    assert f"Rollout #{older.pk}: post stage" in html
    assert "mw-rollout-error" not in html
    listed = re.findall(r'<a href="\?rollout=(\d+)">', sections(html)["mw-rollouts"])
    assert listed == [str(halted.pk), str(older.pk)]
    assert client.get(PAGE + f"{older.pk}/change/").url == f"{PAGE}?rollout={older.pk}"


def test_an_unknown_or_malformed_rollout_id_is_a_404_that_lists_the_rollouts(client, viewer, halted):
    for wanted in ("999999", "abc"):
        page = client.get(PAGE, {"rollout": wanted})
        assert page.status_code == 404
        html = page.content.decode()
        assert f"No fleet rollout {wanted}" in html and f'href="?rollout={halted.pk}"' in html


def test_without_any_rollout_the_page_says_how_to_start_one(client, viewer):
    html = client.get(PAGE).content.decode()
    assert "No fleet rollout yet" in html and "fleet plan --stage pre" in html


def test_the_admin_index_links_to_the_fleet_page(client, viewer):
    assert f'href="{PAGE}"' in client.get("/admin/").content.decode()


def test_an_open_rollout_is_followed_live_from_fleet_json_and_a_finished_one_is_not(
        client, viewer, halted):
    assert f'"/ops/fleet.json?rollout={halted.pk}"' in client.get(PAGE).content.decode()
    halted.status = RolloutStatus.DONE
    halted.save()
    assert "fleet.json?rollout" not in client.get(PAGE).content.decode().split("</head>")[0]


def test_a_user_who_is_not_staff_is_sent_to_the_login_and_staff_without_permission_refused(
        client, halted):
    plain = User.objects.create_user("plain")
    client.force_login(plain)
    page = client.get(PAGE)
    assert page.status_code == 302 and page.url.startswith("/admin/login/")
    client.force_login(user("other-staff", "view_jobrun"))
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE + f"{halted.pk}/change/").status_code == 403


# -- controls: staff holding change_rollout, POST, CSRF ---------------------------------------------


def test_a_viewer_sees_no_controls_and_may_not_post_one(client, viewer, halted):
    html = client.get(PAGE).content.decode()
    assert "mw-fleet-control" not in html.split("</head>")[1]
    response = client.post(CONTROL, {"verb": "skip", "rollout": halted.pk, "target": "foxtrot",
                                     "reason": "no"})
    assert response.status_code == 403
    assert RolloutTarget.objects.get(target="foxtrot").status == TargetStatus.PENDING


def test_an_operator_gets_retry_on_the_failed_and_held_targets_and_skip_on_those_not_through(
        client, operator, halted):
    html = client.get(PAGE).content.decode()
    offered = {name: re.findall(r"mw-fleet-control-(\w+)", row(html, name))
               for name in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")}
    assert offered == {"alpha": [], "bravo": ["skip"], "charlie": ["retry", "skip"],
                       "delta": ["retry", "skip"], "echo": [], "foxtrot": ["skip"]}
    assert "mw-fleet-control-pause" not in html and "mw-fleet-control-resume" not in html


def test_an_operator_skips_a_target_with_a_reason_and_the_timeline_names_them(client, operator,
                                                                             halted):
    response = client.post(CONTROL, {"verb": "skip", "rollout": halted.pk, "target": "foxtrot",
                                     "reason": "moved to the new cluster"}, follow=True)
    assert response.redirect_chain[-1][0] == f"{PAGE}?rollout={halted.pk}"
    skipped = RolloutTarget.objects.get(target="foxtrot")
    assert (skipped.status, skipped.reason) == (TargetStatus.SKIPPED, "moved to the new cluster")
    event = RolloutEvent.objects.get(rollout=halted, target="foxtrot", kind="skipped")
    assert event.actor == "admin:fleet-operator"
    assert f"Rollout #{halted.pk}: foxtrot skipped; now halted." in response.content.decode()


def test_skipping_the_failed_target_lets_the_rollout_go_on_and_an_operator_may_pause_it(
        client, operator, halted):
    """(The steps it sends leave with the transaction's commit, which a test never makes.)"""
    client.post(CONTROL, {"verb": "skip", "rollout": halted.pk, "target": "delta",
                          "reason": "index rebuilt by hand"})
    assert Rollout.objects.get(pk=halted.pk).status == RolloutStatus.RUNNING
    assert "mw-fleet-control-pause" in client.get(PAGE).content.decode()
    response = client.post(CONTROL, {"verb": "pause", "rollout": halted.pk}, follow=True)
    html = response.content.decode()
    assert f"Rollout #{halted.pk}: paused; now paused." in html
    assert "mw-fleet-control-resume" in html and "fleet resume" in html
    assert RolloutEvent.objects.filter(rollout=halted, kind="paused",
                                       actor="admin:fleet-operator").exists()


def test_a_skip_without_a_reason_or_a_pause_of_a_halted_rollout_changes_nothing_and_says_why(
        client, operator, halted):
    response = client.post(CONTROL, {"verb": "skip", "rollout": halted.pk, "target": "foxtrot",
                                     "reason": "  "}, follow=True)
    assert "to skip foxtrot, give a reason" in response.content.decode()
    response = client.post(CONTROL, {"verb": "pause", "rollout": halted.pk}, follow=True)
    assert f"rollout #{halted.pk} is halted, not running" in response.content.decode()
    assert RolloutTarget.objects.get(target="foxtrot").status == TargetStatus.PENDING
    assert Rollout.objects.get(pk=halted.pk).status == RolloutStatus.HALTED


def test_a_control_is_a_csrf_checked_post_for_the_rollout_shown(operator, halted):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    assert strict.post(CONTROL, {"verb": "skip", "rollout": halted.pk, "target": "foxtrot",
                                 "reason": "r"}).status_code == 403
    assert strict.get(CONTROL).status_code == 405
    assert RolloutTarget.objects.get(target="foxtrot").status == TargetStatus.PENDING


def test_a_control_for_a_rollout_that_is_not_the_open_one_changes_nothing(client, operator,
                                                                          halted):
    response = client.post(CONTROL, {"verb": "skip", "rollout": halted.pk + 1,
                                     "target": "foxtrot", "reason": "r"}, follow=True)
    assert "that rollout is not open any more" in response.content.decode()
    assert RolloutTarget.objects.get(target="foxtrot").status == TargetStatus.PENDING


# -- /ops/fleet.json ------------------------------------------------------------------------------


def steady(found: dict) -> dict:
    """A snapshot without the running targets' `seconds`, which grow between two reads."""
    return {**found, "waves": [{**wave, "targets": [{k: v for k, v in t.items() if k != "seconds"}
                                                     for t in wave["targets"]]}
                               for wave in found["waves"]]}


def test_fleet_json_is_the_snapshot_of_the_latest_rollout(client, viewer, halted):
    answer = client.get("/ops/fleet.json").json()
    expected = view.snapshot(halted)
    assert steady({key: answer[key] for key in expected}) == steady(expected)
    assert [w["wave"] for w in answer["waves"]] == [1, 2, 3] and answer["waves"][0]["canary"]
    bravo = answer["waves"][1]["targets"][0]
    assert (bravo["target"], bravo["status"], bravo["jobs"], bravo["eta_seconds"]) == (
        "bravo", "waiting", [JOB_AT_40], 90.0)
    assert answer["rollout"]["status"] == "halted" and "fleet retry delta" in answer["rollout"]["error"]
    assert answer["counts"]["held"] == 1 and answer["counts"]["skipped"] == 1
    assert answer["admin_url"] == f"{PAGE}?rollout={halted.pk}"
    assert [r["id"] for r in answer["rollouts"]] == [halted.pk]


def test_fleet_json_opens_an_older_rollout_and_refuses_a_bad_id_clearly(client, viewer, halted):
    assert client.get("/ops/fleet.json", {"rollout": halted.pk}).json()["rollout"]["id"] == halted.pk
    bad = client.get("/ops/fleet.json", {"rollout": "1; drop"})
    assert bad.status_code == 400 and "a rollout is named by its id" in bad.json()["error"]
    missing = client.get("/ops/fleet.json", {"rollout": "999999"})
    assert missing.status_code == 404 and "no fleet rollout #999999" in missing.json()["error"]
    assert missing.json()["rollouts"][0]["id"] == halted.pk


def test_fleet_json_without_any_rollout_answers_null(client, viewer):
    answer = client.get("/ops/fleet.json").json()
    assert answer["rollout"] is None and answer["waves"] == [] and answer["rollouts"] == []


def test_fleet_json_refuses_without_credentials_and_takes_the_status_token(client, settings,
                                                                          halted):
    assert client.get("/ops/fleet.json").status_code == 401
    settings.MW_STATUS_TOKEN = token_value = secrets.token_urlsafe()
    token = client.get("/ops/fleet.json", HTTP_AUTHORIZATION=f"Bearer {token_value}")
    assert token.status_code == 200 and token.json()["rollout"]["id"] == halted.pk
    assert client.get("/ops/fleet.json", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    client.force_login(user("no-runs", "view_rollout"))
    assert client.get("/ops/fleet.json").status_code == 403


# -- /ops/metrics ---------------------------------------------------------------------------------


def fleet_samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/ops/metrics")
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode())
            for s in family.samples if s.name.startswith("mw_fleet_")}


def test_metrics_carry_the_rollout_its_targets_by_status_and_the_waiting_jobs(client, viewer,
                                                                             halted):
    found = fleet_samples(client)
    r = str(halted.pk)
    assert found[("mw_fleet_rollout_info",
                  (("rollout", r), ("stage", "pre"), ("status", "halted")))] == 1
    counts = {dict(labels)["status"]: value for (name, labels), value in found.items()
              if name == "mw_fleet_targets"}
    assert counts == {"pending": 1, "running": 0, "waiting": 1, "held": 1, "passed": 1,
                      "failed": 1, "skipped": 1}
    statuses = {dict(labels)["target"]: (dict(labels)["wave"], dict(labels)["status"])
                for (name, labels), value in found.items()
                if name == "mw_fleet_target_status" and value == 1}
    assert statuses == {"alpha": ("1", "passed"), "bravo": ("2", "waiting"),
                        "charlie": ("2", "held"), "delta": ("2", "failed"),
                        "echo": ("3", "skipped"), "foxtrot": ("3", "pending")}
    job = (("job", "alerts_uuid"), ("rollout", r), ("server", "pg-bravo:5432"),
           ("target", "bravo"), ("wave", "2"))
    assert found[("mw_fleet_job_progress_ratio", job)] == 0.4
    assert found[("mw_fleet_job_rows_done", job)] == 4000
    assert found[("mw_fleet_job_eta_seconds", job)] == 90
    assert found[("mw_fleet_target_eta_seconds", job[1:])] == 90


def test_metrics_without_any_rollout_have_the_fleet_families_and_no_sample(client, viewer):
    text = client.get("/ops/metrics").content.decode()
    assert "# TYPE mw_fleet_target_status gauge" in text
    assert not fleet_samples(client)


def test_every_fleet_metric_family_has_a_unique_mw_fleet_name_and_help():
    names = [family.name for family in fleet_metrics.FLEET_FAMILIES]
    assert len(names) == len(set(names))
    assert all(family.name.startswith("mw_fleet_") and family.help
               for family in fleet_metrics.FLEET_FAMILIES)
