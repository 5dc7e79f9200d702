"""The README's main command, `make demo` (deploy/demo.sh), end to end at the small size against a
scratch database of its own: the summary it prints must match what the database holds, the admin
and Flower must be up while it runs, Ctrl-C must leave nothing running and nothing a rerun cannot
continue."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from migrations_worker import pg
from tests.conftest import ROOT
from tests.scratch import ScratchDatabase, server_url
from tests.workers import free_port, wait_until

SCRIPT = ROOT / "deploy" / "demo.sh"
SEEDED_ALERTS = 20_000  # the small preset


def as_in_a_terminal() -> None:
    """In the demo's process, before it starts: Ctrl-C interrupts, as in a terminal. A test run
    started in the background (`make test &`, a CI runner) ignores SIGINT, and a shell can
    neither trap nor reset a signal ignored when it started: Ctrl-C would then do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Demo:
    """deploy/demo.sh in a process group of its own, its output collected line by line."""

    def __init__(self, db: ScratchDatabase, workdir: Path):
        self.db = db
        self.dir = workdir / "demo"
        self.web_port = free_port()
        self.flower_port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": db.url,
            "REDIS_URL": settings.CELERY_BROKER_URL,
            "DEMO_DIR": str(self.dir),
            "DEMO_WEB_PORT": str(self.web_port),
            "FLOWER_PORT": str(self.flower_port),
            "DEMO_ADMIN_PASSWORD": "demo-test-password",
            "FLOWER_BASIC_AUTH": "ops:flower-test-password",
            "PY": sys.executable,
        }
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.lines = []
        self.proc = subprocess.Popen(
            [str(SCRIPT), "small"], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=as_in_a_terminal,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        wait_until(lambda: any(text in line for line in self.lines) or self.proc.poll() is not None,
                   timeout, message=f"the demo to print {text!r}")
        assert any(text in line for line in self.lines), self.output

    def wait(self, timeout: float = 150) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # the reader thread drains the pipe
        return code

    def interrupt(self) -> None:
        """Ctrl-C in a terminal: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def leftovers(self) -> list[str]:
        """Processes this demo started that are still there (their arguments name its folder or
        its ports)."""
        ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
        marks = (str(self.dir), f"127.0.0.1:{self.web_port}", f"--port={self.flower_port}")
        return [line.strip() for line in ps.splitlines() if any(mark in line for mark in marks)]

    def stop(self) -> None:
        """After a failed test: Ctrl-C first (the script stops what it started), then whatever
        of this demo's own processes is still there, by pid."""
        if self.proc is not None and self.proc.poll() is None:
            self.interrupt()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        for line in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def figure(output: str, label: str) -> int:
    """A number the summary prints after a label, e.g. '    groups merged    11'."""
    found = re.findall(rf"^\s+{re.escape(label)}\s+([\d,]+)\s*$", output, re.M)
    assert len(found) == 1, f"{label!r} in the summary: {found}\n{output}"
    return int(found[0].replace(",", ""))


def assert_summary_matches_the_database(demo: Demo) -> None:
    out, db = demo.output, demo.db
    summary = out[out.index("== Summary"):]
    reports = dict(db.rows("SELECT DISTINCT ON (job_name) job_name, report FROM migrations_worker_jobrun "
                           "ORDER BY job_name, id DESC"))
    statuses = dict(db.rows("SELECT DISTINCT ON (job_name) job_name, status FROM "
                            "migrations_worker_jobrun ORDER BY job_name, id DESC"))
    assert statuses == {"alerts_uuid": "finished", "ticker_dedup": "finished",
                        "legacy_columns": "finished"}

    # The job's own archive rows: a write of a release naming a merged-away asset that collided
    # on its survivor removed the row it collided with, archived in the write's transaction
    # beside the write's `redirected` row (the redirect triggers of assets.0012); after an
    # interrupted deploy the row removed may be one the first attempt's traffic wrote, which
    # neither release's own tally of its writes counts.
    archive = dict(((a, t), n) for a, t, n in db.rows(
        "SELECT action, table_name, count(*) FROM assets_assetmergearchive x "
        "WHERE NOT (x.action = 'removed' AND EXISTS (SELECT 1 FROM assets_assetmergearchive r "
        "WHERE r.action = 'redirected' AND r.group_id = x.group_id "
        "AND r.archived_at = x.archived_at)) GROUP BY 1, 2"))
    merged = {
        "groups merged": db.scalar("SELECT count(DISTINCT group_id) FROM assets_assetmergearchive "
                                   "WHERE table_name = 'assets_asset'"),
        "duplicate assets removed": archive[("removed", "assets_asset")],
        "rows re-pointed": sum(n for (a, _), n in archive.items() if a == "changed"),
        "colliding rows merged away": sum(n for (a, t), n in archive.items()
                                          if a == "removed" and t != "assets_asset"),
        "holdings summed into one": archive.get(("removed", "portfolios_holding"), 0),
    }
    for label, held in merged.items():
        assert figure(summary, label) == held, label
    assert merged["groups merged"] > 0
    assert db.scalar("SELECT count(*) FROM (SELECT 1 FROM assets_asset GROUP BY ticker, exchange_id "
                     "HAVING count(*) > 1) d") == 0

    outcomes = dict(db.rows("SELECT outcome, count(*) FROM assets_assetlegacytext "
                            "WHERE source = 'job' GROUP BY 1"))
    assert figure(summary, "values archived") == sum(outcomes.values()) > 0
    assert figure(summary, "values matched") == outcomes["matched"]
    assert figure(summary, "values unmatched") == outcomes["unmatched"]
    assert figure(summary, "values ambiguous") == outcomes["ambiguous"]
    assert figure(summary, "assets linked") == reports["legacy_columns"]["assets_linked"]

    backfilled = figure(summary, "alerts backfilled")
    assert backfilled == reports["alerts_uuid"]["alerts_backfilled"]
    # Every seeded alert got its uuid from the job; alerts the live load inserted after the
    # column default existed got theirs from the default.
    assert SEEDED_ALERTS <= backfilled <= db.scalar("SELECT count(*) FROM investments_alert")
    assert db.scalar("SELECT count(*) FROM investments_alert WHERE uuid IS NULL") == 0
    assert figure(summary, "trigger references backfilled") == \
        reports["alerts_uuid"]["references_backfilled"]

    checks = re.search(r"Verification: (\d+) of (\d+) passed", summary)
    assert checks and checks[1] == checks[2], summary
    assert "FAIL" not in summary

    for phase in ("legacy schema and seed", "pre-deploy stage (migrate_online --stage pre --wait)",
                  "rollout (both releases, then the new one)",
                  "post-deploy stage (migrate_online --stage post --wait)",
                  "gate investments.0006_alert_uuid_not_null (alerts_uuid)",
                  "job alerts_uuid ran"):
        assert re.search(rf"^\s+{re.escape(phase)}.*\s[\d.]+s( \(earlier run\))?$", summary, re.M), \
            phase

    # Each release's traffic, reported apart: no error, and every write of it kept.
    for release, title in (("previous", "The previous release (legacy models) meanwhile"),
                           ("new", "The new release (today's models) meanwhile")):
        load = json.loads((demo.dir / f"{release}.json").read_text())
        assert load["statements"] > 0 and load["errors"] == 0, load
        section = summary[summary.index(title):]
        traffic = re.search(r"statements ([\d,]+), errors (\d+), .* max ([\d.]+) ms", section)
        assert traffic, section
        assert int(traffic[1].replace(",", "")) == load["statements"]
        assert float(traffic[3]) == pytest.approx(load["max_ms"], abs=0.06)
        assert f"longest lock wait: {load['lock_wait']['seconds']:.2f} s" in section
        assert re.search(r"its writes: .* nothing missing", section), section
    captured = re.search(r"Captured during the deploy: ([\d,]+) archive row", summary)
    assert captured and int(captured[1].replace(",", "")) == db.scalar(
        "SELECT count(*) FROM assets_assetlegacytext WHERE source = 'write'") > 0


@pytest.fixture
def demo(tmp_path):
    db = ScratchDatabase(f"{connection.settings_dict['TEST']['NAME']}_demo")
    db.drop()  # the script creates it, as on a fresh machine
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    runner = Demo(db, tmp_path)
    yield runner
    runner.stop()
    broker.flushdb()
    db.drop()


def test_demo_runs_end_to_end_and_its_summary_matches_the_database(demo):
    demo.start()
    demo.wait_for_line("Meanwhile, look at:", timeout=90)
    demo.wait_for_line("logs:", timeout=5)
    web = f"http://127.0.0.1:{demo.web_port}"
    # While it runs: the admin asks for the printed login, the API refuses strangers, Flower
    # wants its own login.
    assert f"{web}/admin/migrations_worker/jobrun/" in demo.output
    assert "login: operator / demo-test-password" in demo.output
    assert f"http://127.0.0.1:{demo.flower_port}/   login: ops / flower-test-password" in demo.output
    assert http_status(f"{web}/admin/login/") == 200
    assert http_status(f"{web}/ops/runs.json") == 401
    flower = f"http://127.0.0.1:{demo.flower_port}/"
    assert http_status(flower) == 401
    assert http_status(flower, ("ops", "flower-test-password")) == 200
    assert len(demo.leftovers()) >= 6  # workers, beat, web, Flower, the load: all found running

    assert demo.wait() == 0, demo.output
    assert "pre-deploy stage done" in demo.output and "post-deploy stage done" in demo.output
    assert_summary_matches_the_database(demo)
    assert demo.leftovers() == []
    assert http_status(f"{web}/admin/login/") == 0  # the admin and Flower went with it
    assert http_status(flower) == 0
    # The login printed is the operator's, and an operator is not a superuser.
    assert demo.db.rows("SELECT is_staff, is_superuser FROM auth_user WHERE username = 'operator'") \
        == [(True, False)]


@contextlib.contextmanager
def jobs_stepping_aside(url: str) -> Iterator[None]:
    """Every job of the database at `url` on hold while this lasts: a session holds the advisory
    lock a deploy step takes while it backs off from a lock (throttle.ddl_backing_off), which
    no migration waits for. Taken as soon as the demo has created its database."""
    wait_until(lambda: connectable(url), 60, interval=0.05, message="the demo's database")
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock_shared(%s)", [pg.DDL_BACKING_OFF_KEY])
        yield


def connectable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def test_ctrl_c_in_the_deploy_step_stops_everything_and_a_rerun_finishes_the_job(demo):
    # Gates wait for the workers (none finishes its job inline), and the jobs are held, so the
    # deploy step is sure to be waiting at a gate when Ctrl-C comes: on a fast machine the
    # small demo's jobs could otherwise be done before the signal is sent.
    demo.env["MW_GATE_INLINE_LIMIT"] = "0"
    demo.start()
    with jobs_stepping_aside(demo.db.url):
        demo.wait_for_line("waits for job", timeout=90)
        demo.interrupt()
        code = demo.wait(timeout=60)
    assert code == 130, demo.output
    assert "interrupted: progress is saved in the database; run the same command again" in demo.output
    assert demo.leftovers() == []

    demo.start()
    assert demo.wait() == 0, demo.output
    assert "the online migration already started here: continuing it" in demo.output
    assert_summary_matches_the_database(demo)
    assert demo.leftovers() == []


@pytest.mark.parametrize("where", ["another database on the local server", "another server"])
def test_reset_refuses_any_database_but_the_demos_own_before_touching_anything(tmp_path, where):
    name = f"{connection.settings_dict['TEST']['NAME']}_not_the_demo"
    password = secrets.token_hex(8)
    url = (server_url(name) if where.startswith("another database")
           else f"postgres://app:{password}@db.invalid:5432/{name}")
    result = subprocess.run(
        [str(SCRIPT), "small"], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, env={**os.environ, "RESET": "1", "DATABASE_URL": url, "PY": sys.executable,
                         "REDIS_URL": settings.CELERY_BROKER_URL, "DEMO_DIR": str(tmp_path / "demo")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "RESET=1 refused: it empties only the demo's own local database" in result.stderr
    assert "Unset DATABASE_URL to reset the local one" in result.stderr
    assert password not in result.stdout + result.stderr  # the password stays out of the log
    assert "==" not in result.stdout  # refused before any step began
    with psycopg.connect(server_url("postgres")) as server:  # nothing created either
        assert not server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
