"""The admin's operator actions without a browser: every action asks first, only operators may
act, and the run page shows what a failed run needs (Django's test client, real database)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from migrations_worker.admin import OPERATE, ensure_operator
from migrations_worker.models import HoldKind, JobRun, RunStatus
from migrations_worker.runs import control
from tests.engine_app.support import JOB, make_widgets

pytestmark = pytest.mark.django_db(transaction=True)
RUNS = "/admin/migrations_worker/jobrun/"


@pytest.fixture
def operator(client) -> User:
    user = ensure_operator("operator", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    client.force_login(user)
    return user


def pending_run() -> JobRun:
    make_widgets(10)
    return control.create_run(JOB)


def test_ensure_operator_makes_a_staff_operator_and_updates_the_password_when_run_again():
    first = ensure_operator("operator", "one")
    again = ensure_operator("operator", "two")
    assert again.pk == first.pk
    again = User.objects.get(pk=first.pk)
    assert again.is_staff and not again.is_superuser
    assert again.has_perm(OPERATE) and again.has_perm("migrations_worker.view_jobbatch")
    assert again.check_password("two") and not again.check_password("one")


def test_a_list_action_shows_a_confirmation_page_and_changes_nothing_until_confirmed(client, operator):
    run = pending_run()
    page = client.post(RUNS, {"action": "pause_runs", "_selected_action": [run.pk]})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Pause: are you sure?" in html
    assert "Nothing is lost: Resume continues from the next batch." in html
    assert re.search(rf'name="_selected_action" value="{run.pk}"', html)
    assert 'name="post" value="yes"' in html
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    assert not run.events.filter(actor="admin:operator").exists()

    done = client.post(RUNS, {"action": "pause_runs", "_selected_action": [run.pk], "post": "yes"},
                       follow=True)
    assert f"{JOB} #{run.pk}: pause requested (now paused)" in done.content.decode().lower()
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PAUSED
    assert run.events.filter(to_status="paused", actor="admin:operator").exists()


def test_the_confirmation_names_runs_the_action_cannot_apply_to_and_does_not_submit_them(
    client, operator
):
    run = pending_run()
    page = client.post(RUNS, {"action": "retry_runs", "_selected_action": [run.pk]})
    html = page.content.decode()
    assert "not possible: only a failed run can be retried (it is pending)" in html
    assert 'name="post"' not in html  # nothing to confirm
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_the_run_page_buttons_lead_to_a_confirmation_then_act(client, operator):
    run = pending_run()
    url = reverse("admin:migrations_worker_jobrun_control", args=[run.pk, "cancel"])
    page = client.get(reverse("admin:migrations_worker_jobrun_change", args=[run.pk]))
    assert f'href="{url}"' in page.content.decode()
    confirm = client.get(url)
    assert "Cancel: are you sure?" in confirm.content.decode()
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    assert client.post(url).status_code == 200  # a POST without post=yes only asks again
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    done = client.post(url, {"post": "yes"})
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:migrations_worker_jobrun_change", args=[run.pk])
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_staff_without_the_operator_permission_get_no_actions_and_no_control_urls(client, viewer):
    run = pending_run()
    listing = client.get(RUNS).content.decode()
    assert "pause_runs" not in listing and "_selected_action" not in listing
    page = client.get(reverse("admin:migrations_worker_jobrun_change", args=[run.pk]))
    assert page.status_code == 200 and 'class="mw-control' not in page.content.decode()
    url = reverse("admin:migrations_worker_jobrun_control", args=[run.pk, "cancel"])
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_an_unknown_control_is_refused(client, operator):
    run = pending_run()
    url = reverse("admin:migrations_worker_jobrun_control", args=[run.pk, "delete"])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert JobRun.objects.filter(pk=run.pk).exists()


def test_the_runs_list_and_the_run_page_show_a_hold_with_its_kind_while_it_lasts(client, viewer):
    run = pending_run()
    JobRun.objects.filter(pk=run.pk).update(
        hold_reason="transaction open for 700s (pid 4242)", hold_kind=HoldKind.LONG_TRANSACTION,
        hold_until=timezone.now() + timedelta(minutes=1),
    )
    shown = "on hold (long transaction): transaction open for 700s (pid 4242)"
    assert shown in client.get(RUNS).content.decode()
    page = client.get(reverse("admin:migrations_worker_jobrun_change", args=[run.pk]))
    assert shown in page.content.decode()


def test_the_run_page_shows_the_quarantined_key_filters_batches_by_status_and_lists_errors(
    client, viewer
):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tests.engine_app.models import Knob

    make_widgets(300)
    control.create_run(JOB, options={"batch_size": 100, "min_batch_size": 100,
                                     "max_batch_size": 100})
    Knob.objects.create(name="fail_at", value=150)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB)
    run = JobRun.objects.get(job_name=JOB)
    url = reverse("admin:migrations_worker_jobrun_change", args=[run.pk])

    # The three batches of 100, the middle one cut six times (at 150, 125, 138, 144, 147, 149)
    # down to key 150 alone.
    everything = client.get(url).content.decode()
    assert everything.count('class="mw-batch mw-batch-') == run.batches.count() == 9
    assert "errornote" not in everything
    assert '<svg class="mw-chart"' in everything
    quarantine = everything[everything.index('id="mw-quarantine"'):]
    quarantine = quarantine[:quarantine.index("</fieldset>")]
    assert "Quarantined keys (1 open of 1)" in quarantine
    assert re.search(r'<tr class="mw-quarantine-open"><td>150</td><td>open</td>\s*<td>3</td>',
                     quarantine)
    assert "RuntimeError: injected failure at key 150" in quarantine
    assert f"backfill quarantine {JOB} --accept" in quarantine
    # Errors: the quarantined batch, and the pieces of the cut range, which keep the error
    # their range failed with although they succeeded since.
    errors = everything[everything.index('id="mw-errors"'):]
    errors = errors[:errors.index("</fieldset>")]
    assert "Errors (7 batches)" in errors
    assert re.search(r"\(149, 150\]</td>\s*<td><span class=\"mw-status mw-status-quarantined\">",
                     errors)
    assert errors.count("mw-status-succeeded") == 6
    assert errors.count("RuntimeError: injected failure at key 150") == 7
    assert "(0, 100]" not in errors and "(200, 300]" not in errors

    set_aside = client.get(url, {"batch_status": "quarantined"}).content.decode()
    assert set_aside.count('class="mw-batch mw-batch-quarantined"') == 1
    assert "(149, 150]" in set_aside
    assert 'class="mw-batch mw-batch-succeeded"' not in set_aside
    failed = client.get(url, {"batch_status": "failed"}).content.decode()
    assert 'class="mw-batch mw-batch-' not in failed and "No failed batches." in failed
    succeeded = client.get(url, {"batch_status": "succeeded"}).content.decode()
    assert succeeded.count('class="mw-batch mw-batch-succeeded"') == 8
