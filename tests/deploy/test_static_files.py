"""The admin under production settings, as the image runs it: static files collected the way the
Dockerfile collects them, gunicorn serving `config.wsgi:application`, a real browser (Debian's
chromium through Playwright) logging in. The page must render with its stylesheet, not as the
bare HTML an unserved /static/ gives. The screenshot goes to test-output/browser/.

In front of the app the test plays the TLS-terminating proxy a deployment has: every request
carries `X-Forwarded-Proto: https` (production redirects plain HTTP and sets secure cookies) and
the origin the browser sees is listed in CSRF_TRUSTED_ORIGINS, as a deployment lists its own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT
from tests.workers import free_port, wait_until

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-output" / "browser"
PASSWORD = secrets.token_urlsafe(16)  # a test login on a throwaway database
PROXY = {"X-Forwarded-Proto": "https"}
# The admin's header colour (django/contrib/admin/static/admin/css/base.css, --header-bg): only
# there once base.css has loaded.
ADMIN_HEADER_BG = "rgb(65, 118, 144)"


@pytest.fixture
def production(test_database_url, tmp_path) -> dict[str, str]:
    """The environment the image runs with (deploy/Dockerfile, docker-compose.yml), on the test
    database, and static files collected into a directory of the test's own."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DEBUG", "STATIC_ROOT", "MW_TARGETS_FILE")},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "PYTHONPATH": os.pathsep.join(map(str, (ROOT / "engine", ROOT / "apps" / "backend" / "src"))),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}",
        "DATABASE_URL": test_database_url,
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "STATIC_ROOT": str(tmp_path / "static"),
        "PORT": str(port),
    }
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert collect.returncode == 0, collect.stderr
    operator = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from migrations_worker.admin import ensure_operator; "
         f"ensure_operator('operator', {PASSWORD!r})"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert operator.returncode == 0, operator.stderr
    return env


@pytest.fixture
def gunicorn(production, tmp_path):
    """gunicorn as the image's CMD starts it, on a port of the test's own; its URL."""
    log = tmp_path / "gunicorn.log"
    url = f"http://127.0.0.1:{production['PORT']}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi:application",
             "--chdir", "apps/backend/src", "--bind", f"127.0.0.1:{production['PORT']}"],
            cwd=ROOT, env=production, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: answers(f"{url}/admin/login/") or proc.poll() is not None, timeout=60,
                   message="gunicorn to answer")
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(log.read_text())


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=PROXY), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def page():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests drive Debian's chromium. Install it "
                    "with `deploy/browser.sh` as root (or `sudo apt-get install chromium`).")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      extra_http_headers=PROXY)
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def test_the_production_admin_renders_with_its_stylesheet_served_by_gunicorn(gunicorn, page):
    static = []
    page.on("response", lambda r: static.append(r) if "/static/" in r.url else None)
    page.goto(f"{gunicorn}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.wait_for_load_state("networkidle")
    path = SHOTS / "production-admin.png"
    page.screenshot(path=str(path), full_page=True)

    # Styled: the header has the admin's colour, which only base.css gives it.
    header = page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor")
    assert header == ADMIN_HEADER_BG, f"unstyled admin (screenshot: {path})"
    # Every static file the page asked for came back, under a content-hashed name.
    assert static, "the page loaded no static file"
    failed = [(r.url, r.status) for r in static if r.status != 200]
    assert not failed, failed
    css = [r for r in static if r.url.endswith(".css")]
    assert any("/static/admin/css/base." in r.url for r in css), [r.url for r in css]
    assert all(re.search(r"\.[0-9a-f]{12}\.css$", r.url) for r in css), [r.url for r in css]
    assert all(r.headers["content-type"].startswith("text/css") for r in css)


def test_static_files_are_compressed_and_cached_for_good(gunicorn, production):
    manifest = json.loads((Path(production["STATIC_ROOT"]) / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    request = urllib.request.Request(f"{gunicorn}/static/{hashed}",
                                     headers={**PROXY, "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/css")
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
