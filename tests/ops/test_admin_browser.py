"""The operator's screens in a real browser: headless Chromium (Debian's `chromium`, driven by
Playwright; no browser download) against the app on a live server, with a real Celery
worker (the embedded one, `celery_worker`) making the progress move. Screenshots go to
test-output/browser/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError

from migrations_worker.admin import ensure_operator
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.runs import control, dispatch
from tests.conftest import ROOT
from tests.engine_app.models import Knob
from tests.engine_app.support import JOB, make_widgets
from tests.workers import free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SHOTS = ROOT / "test-output" / "browser"
PASSWORD = "correct-horse-battery"  # a test login on a throwaway database
RUNS = "/admin/migrations_worker/jobrun/"
# Fixed 50-key batches that each take ~0.1 s: a run of a few thousand keys lasts long enough to
# watch, pause and resume.
SLOW = {"batch_size": 50, "min_batch_size": 50, "max_batch_size": 50}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium. Install it with "
            "`deploy/browser.sh` as root (or `sudo apt-get install chromium`); `make test` runs "
            "that step for you."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]'")
    # Playwright's sync API runs an event loop under the test; Django's ORM would then refuse
    # to run in this thread, though nothing here is actually asynchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, live_server, username: str, next_url: str = RUNS) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def viewer(username: str = "viewer") -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="migrations_worker", codename__startswith="view_"))
    return user


def progress_value(page, run_id: int) -> float:
    return float(page.get_attribute(f'[data-mw-run="{run_id}"][data-mw-field="percent"] progress',
                                    "value"))


def rows_done(run_id: int) -> int:
    return JobRun.objects.get(pk=run_id).rows_done


def status_of(run_id: int) -> str:
    return JobRun.objects.get(pk=run_id).status


def test_operator_watches_a_running_job_move_then_pauses_and_resumes_it(
    page, live_server, celery_worker
):
    make_widgets(6_000)
    Knob.objects.create(name="sleep", value=0.1)
    ensure_operator("operator", PASSWORD)
    run = dispatch.start(JOB, options=SLOW)
    wait_until(lambda: rows_done(run.pk) > 0, 30, message="the worker to finish a first batch")

    log_in(page, live_server, "operator")
    first = progress_value(page, run.pk)
    # The bar moves by itself: the page polls the status API, no reload.
    page.wait_for_function(
        "([id, before]) => parseFloat(document.querySelector("
        "`[data-mw-run=\"${id}\"][data-mw-field=\"percent\"] progress`).value) > before",
        arg=[run.pk, first],
    )
    assert page.inner_text(f'[data-mw-run="{run.pk}"][data-mw-field="status"]') == "running"
    assert re.fullmatch(r"[\d,]+", page.inner_text(f'[data-mw-run="{run.pk}"][data-mw-field="rate"]'))
    assert page.inner_text(f'[data-mw-run="{run.pk}"][data-mw-field="eta"]') != "-"
    shot(page, "operator-runs-list-running")

    # Pause, through the confirmation page.
    page.check(f'input[name="_selected_action"][value="{run.pk}"]')
    page.select_option("select[name=action]", "pause_runs")
    page.click("button[name=index]")
    page.wait_for_selector("#mw-confirm")
    assert "Workers finish the batch in hand, then stop" in page.inner_text("#mw-confirm")
    shot(page, "operator-pause-confirmation")
    assert status_of(run.pk) == RunStatus.RUNNING  # nothing happens before the confirmation
    page.click("input.mw-confirm-button")
    page.wait_for_selector(".messagelist .success")
    assert f"{JOB} #{run.pk}: pause requested" in page.inner_text(".messagelist").lower()
    wait_until(lambda: status_of(run.pk) == RunStatus.PAUSED, 30, message="the worker to pause")
    page.wait_for_function(
        "id => document.querySelector(`[data-mw-run=\"${id}\"][data-mw-field=\"status\"]`)"
        ".textContent === 'paused'", arg=run.pk,
    )
    paused_at = rows_done(run.pk)
    time.sleep(1.0)
    assert rows_done(run.pk) == paused_at  # a paused run does no work
    shot(page, "operator-runs-list-paused")

    # Resume, from the run's own page.
    page.click(f'#result_list a[href$="/jobrun/{run.pk}/change/"] >> nth=0')
    page.wait_for_selector("#mw-run-summary")
    controls = page.locator("a.mw-control")
    assert [controls.nth(i).get_attribute("class").split()[-1] for i in range(controls.count())] \
        == ["mw-control-resume", "mw-control-cancel"]
    page.click("a.mw-control-resume")
    page.wait_for_selector("#mw-confirm")
    page.click("input.mw-confirm-button")
    page.wait_for_selector("#mw-run-summary")
    assert f"{JOB} #{run.pk}: resumed" in page.inner_text(".messagelist").lower()
    wait_until(lambda: rows_done(run.pk) > paused_at, 30, message="the resumed run to move")
    page.reload()
    page.wait_for_selector("#mw-chart svg circle")
    assert "running" in page.inner_text("#mw-run-summary")
    assert "admin:operator" in page.inner_text("#mw-events")
    shot(page, "operator-run-page-resumed")

    # And cancel it, so the test ends here.
    page.click("a.mw-control-cancel")
    page.wait_for_selector("#mw-confirm")
    page.click("input.mw-confirm-button")
    wait_until(lambda: status_of(run.pk) == RunStatus.CANCELLED, 30, message="the cancel")
    steps = list(JobRun.objects.get(pk=run.pk).events.filter(actor="admin:operator")
                 .values_list("to_status", flat=True))
    assert steps == ["pausing", "running", "cancelling"]


def test_operator_sees_the_quarantined_key_with_its_error_and_a_retry_button(page, live_server):
    make_widgets(300)
    Knob.objects.create(name="fail_at", value=150)
    with pytest.raises(CommandError):
        call_command("backfill", "run", JOB, "--batch-size", "100")
    run = JobRun.objects.get(job_name=JOB)
    ensure_operator("operator", PASSWORD)

    log_in(page, live_server, "operator")
    row = page.inner_text(f'#result_list tr:has([data-mw-run="{run.pk}"])')
    assert "failed" in row and "1 quarantined key(s) left open: key 150" in row
    assert "injected failure at key 150" in row
    shot(page, "operator-runs-list-failed")

    page.goto(f"{live_server.url}{RUNS}{run.pk}/change/")
    assert page.locator(".errornote").count() == 0  # a read-only page has no form errors
    quarantined = page.inner_text("#mw-quarantine")
    assert "Quarantined keys (1 open of 1)" in quarantined
    assert "RuntimeError: injected failure at key 150" in quarantined
    assert f"backfill quarantine {JOB} --accept" in quarantined
    key_rows = page.locator("#mw-quarantine tbody tr")
    assert key_rows.count() == 1
    assert key_rows.first.inner_text().split("\t")[:3] == ["150", "open", "3"]
    errors = page.inner_text("#mw-errors")
    assert "(149, 150]" in errors and "RuntimeError: injected failure at key 150" in errors
    assert page.locator("a.mw-control-retry").inner_text().lower() == "retry failed batches"
    page.click('[data-batch-filter="quarantined"]')
    page.wait_for_url("**batch_status=quarantined")
    batch_rows = page.locator("#mw-batches tbody tr")
    assert batch_rows.count() == 1
    assert batch_rows.first.inner_text().startswith("(149, 150]")
    assert "injected failure at key 150" in batch_rows.first.inner_text()
    events = page.inner_text("#mw-events")
    assert "key 150 quarantined after 3 attempt(s)" in events and "failed" in events
    shot(page, "operator-run-page-quarantined-key")


def test_staff_without_the_operator_permission_sees_runs_but_no_actions(page, live_server):
    make_widgets(10)
    run = control.create_run(JOB)
    viewer()

    log_in(page, live_server, "viewer")
    assert page.locator(f'[data-mw-run="{run.pk}"][data-mw-field="percent"] progress').count() == 1
    assert page.locator("select[name=action]").count() == 0
    assert page.locator('input[name="_selected_action"]').count() == 0
    shot(page, "viewer-runs-list")

    page.goto(f"{live_server.url}{RUNS}{run.pk}/change/")
    page.wait_for_selector("#mw-run-summary")
    assert page.locator("a.mw-control").count() == 0
    shot(page, "viewer-run-page")

    response = page.goto(f"{live_server.url}{RUNS}{run.pk}/control/pause/")
    assert response.status == 403
    assert status_of(run.pk) == RunStatus.PENDING


def test_anonymous_visitor_is_sent_to_the_login_page(page, live_server):
    make_widgets(10)
    run = control.create_run(JOB)
    for path in (RUNS, f"{RUNS}{run.pk}/change/", f"{RUNS}{run.pk}/control/cancel/"):
        page.goto(f"{live_server.url}{path}")
        assert "/admin/login/" in page.url, path
        assert page.locator("#id_username").count() == 1
    shot(page, "anonymous-login-page")
    assert status_of(run.pk) == RunStatus.PENDING


def test_flower_asks_for_its_login_and_lists_run_slice_tasks_with_run_id_and_job_name(
    browser, processes, celery_env, tmp_path
):
    port = free_port()
    flower_log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed below
    flower = subprocess.Popen(
        [str(ROOT / "deploy" / "flower.sh")], cwd=ROOT, stdout=flower_log, stderr=subprocess.STDOUT,
        env={**celery_env, "FLOWER_BASIC_AUTH": f"ops:{PASSWORD}", "FLOWER_PORT": str(port),
             "PY": sys.executable, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _status(f"{url}/healthcheck") == 200, 30, message="Flower to start")
        assert _status(f"{url}/tasks") == 401  # no login, no Flower

        make_widgets(500)
        # A worker process as Flower sees one deployed: its node name, events on (-E).
        processes._spawn("w1", ["worker", "-Q", "migrations", "--pool", "solo", "-n", "w1@%h",
                                "-E", "--without-gossip", "--without-mingle", "-l", "INFO"])
        wait_until(lambda: "w1@" in (tmp_path / "w1.log").read_text(errors="replace")
                   and " ready." in (tmp_path / "w1.log").read_text(errors="replace"), 30,
                   message="the worker to be ready (and sending events) before the task arrives")
        run = dispatch.start(JOB, batch_size=100)
        wait_until(lambda: status_of(run.pk) == RunStatus.FINISHED, 60, message="the run to finish")

        context = browser.new_context(http_credentials={"username": "ops", "password": PASSWORD},
                                      viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/tasks")
        page.locator("a", has_text="migrations_worker.run_slice").first.wait_for(timeout=30_000)
        shot(page, "flower-tasks")
        page.goto(url + page.locator('a[href*="/task/"]').first.get_attribute("href"))
        page.wait_for_selector("text=Arguments")
        # A task's arguments are (run id, job name, epoch, lane): they name the run.
        details = page.inner_text("body")
        assert f"[{run.pk}, '{JOB}', " in details or f"({run.pk}, '{JOB}', " in details, details
        shot(page, "flower-task")
        context.close()
    finally:
        os.killpg(flower.pid, 15)
        flower.wait(timeout=30)
        flower_log.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
