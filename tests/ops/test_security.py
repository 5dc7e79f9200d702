"""Security: who may steer the jobs, what guards Flower, what never leaks, how SQL is built.

- Every operator action in the admin (pause, resume, cancel, retry), by both of its ways in (the
  runs list and a run's own control page), refuses each kind of user without
  `migrations_worker.operate_jobrun`, and works for one who has it.
- Flower answers nothing without its login.
- No secret is committed: every tracked text file, this one included, is scanned by
  detect-secrets (each finding it allows reviewed in `.secrets.baseline`, with a reason here) and
  by the project's checks for what detect-secrets misses (tests/ops/secrets_scan.py); a sample of
  each form a secret takes is shown to be caught, and references to be let through.
- No password reaches a log: a worker run against a PostgreSQL role and a Redis that both
  demand passwords, through a broker restart and a terminated session, logs neither.
- SQL is built from literals, psycopg's `sql` objects and parameters only (an AST check over
  every way SQL goes in: execute, raw, RawSQL, COPY, RunSQL, SafeSQL), each exception naming
  its one line.

(`check --deploy` with the production settings is clean: tests/deploy/test_settings.py.)
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode

import psycopg
import psycopg.sql
import pytest
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.settings import Settings
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from migrations_worker.models import BatchStatus, JobRun, RunStatus
from migrations_worker.runs import control
from tests.chaos.database import engine_database
from tests.chaos.services import PasswordRedis, PrivatePostgres, traversable_tmpdir
from tests.chaos.sql_safety import Finding, ModuleCheck, exempt
from tests.conftest import ROOT
from tests.engine_app.support import JOB, make_widgets
from tests.ops import secrets_scan
from tests.workers import Processes, free_port, wait_until

# -- operator actions -------------------------------------------------------------------------------

ACTIONS = ("pause", "resume", "cancel", "retry")
RUNS = "admin:migrations_worker_jobrun_changelist"


def run_for(action: str) -> JobRun:
    """A run in a state the action applies to."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tests.engine_app.models import Knob

    make_widgets(300)
    if action == "retry":
        Knob.objects.create(name="fail_at", value=150)
        with pytest.raises(CommandError):
            call_command("backfill", "run", JOB, "--batch-size", "100")
        Knob.objects.all().delete()
        return JobRun.objects.get(job_name=JOB)
    run = control.create_run(JOB)
    return control.pause(run, actor="test") if action == "resume" else run


def state_of(run: JobRun) -> tuple:
    run = JobRun.objects.get(pk=run.pk)
    return run.status, run.dispatch_epoch, run.events.count(), list(
        run.batches.order_by("id").values_list("status", "attempts"))


def user_without_operate(kind: str) -> User | None:
    if kind == "anonymous":
        return None
    user = User.objects.create_user(f"{kind}-user", password="pw", is_staff=kind != "not-staff")
    if kind == "viewer":
        user.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    if kind == "not-staff":  # every permission but no staff flag: the admin is closed to it
        user.user_permissions.add(*Permission.objects.filter(content_type__app_label="migrations_worker"))
    return user


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["anonymous", "not-staff", "staff-without-permissions", "viewer"])
@pytest.mark.parametrize("action", ACTIONS)
def test_each_operator_action_refuses_a_user_without_the_operate_permission(client, action, kind):
    run = run_for(action)
    before = state_of(run)
    user = user_without_operate(kind)
    if user is not None:
        client.force_login(user)

    listed = client.post(reverse(RUNS), {"action": f"{action}_runs", "_selected_action": [run.pk],
                                         "post": "yes"})
    assert listed.status_code in (200, 302, 403)
    if listed.status_code == 302:  # only to the login page, never "done"
        assert "/admin/login/" in listed["Location"]
    control_url = reverse("admin:migrations_worker_jobrun_control", args=[run.pk, action])
    direct = client.post(control_url, {"post": "yes"})
    if kind in ("anonymous", "not-staff"):
        assert direct.status_code == 302 and "/admin/login/" in direct["Location"]
    else:
        assert direct.status_code == 403
    assert state_of(run) == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ACTIONS)
def test_each_operator_action_works_for_a_user_with_the_operate_permission(client, action):
    run = run_for(action)
    before = state_of(run)
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_jobrun", "operate_jobrun"]))
    client.force_login(user)
    client.post(reverse(RUNS), {"action": f"{action}_runs", "_selected_action": [run.pk], "post": "yes"})
    after = JobRun.objects.get(pk=run.pk)
    assert state_of(run) != before
    assert after.status == {"pause": RunStatus.PAUSED, "resume": RunStatus.RUNNING,
                            "cancel": RunStatus.CANCELLED, "retry": RunStatus.RUNNING}[action]
    assert after.events.filter(actor="admin:operator").exists()
    if action == "retry":  # the key it set aside is walked again
        assert not after.batches.filter(
            status__in=[BatchStatus.FAILED, BatchStatus.QUARANTINED]).exists()
        assert list(after.quarantined.values_list("key", "resolution")) == [(150, "retried")]


# -- Flower ---------------------------------------------------------------------------------------------


def http_status(url: str, credentials: str | None = None) -> int:
    request = urllib.request.Request(url)
    if credentials is not None:
        request.add_header("Authorization", "Basic " + b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def flower_env(tmp_path):
    from django.conf import settings

    return {"PATH": "/usr/bin:/bin", "PY": sys.executable, "REDIS_URL": settings.CELERY_BROKER_URL,
            "TEST_REDIS_URL": settings.CELERY_BROKER_URL, "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "FLOWER_PORT": str(free_port()), "HOME": str(tmp_path)}


def test_flower_does_not_start_without_a_login(flower_env):
    result = subprocess.run([str(ROOT / "deploy" / "flower.sh")], env=flower_env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr


def test_flower_answers_nothing_without_its_login_and_keeps_the_password_off_the_command_line(
    flower_env, tmp_path
):
    password = secrets.token_urlsafe(16)
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed below
    flower = subprocess.Popen([str(ROOT / "deploy" / "flower.sh")], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env={**flower_env, "FLOWER_BASIC_AUTH": f"ops:{password}"})
    url = f"http://127.0.0.1:{flower_env['FLOWER_PORT']}"
    try:
        wait_until(lambda: http_status(f"{url}/", f"ops:{password}") == 200, 60, 0.3,
                   "Flower to answer")
        for path in ("/", "/tasks", "/workers", "/broker", "/api/workers", "/api/tasks"):
            assert http_status(url + path) == 401, path
            assert http_status(url + path, "ops:wrong-password") == 401, path
            assert http_status(url + path, f"admin:{password}") == 401, path
        assert http_status(f"{url}/tasks", f"ops:{password}") == 200
        command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "flower" in command_lines and password not in command_lines
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=30)
        log.close()


# -- secrets in the repository ----------------------------------------------------------------------------

# Every finding in `.secrets.baseline`, reviewed and marked `"is_secret": false`, by file: why
# none of them is a secret.
BASELINE_REVIEW = {
    "apps/backend/src/config/settings/dev.py":
        "the development settings' fallback key, named insecure; production refuses to start "
        "without a real one from the environment (tests/deploy/test_settings.py)",
    "tests/deploy/test_compose.py":
        "the literal SECRET_KEY, password default and URL password samples the compose test's "
        "own checker must flag",
    "tests/deploy/test_settings.py":
        "a MySQL URL the settings must refuse as not PostgreSQL; no such server exists",
    "tests/engine/test_engine_control.py": "the password of throwaway users in the test database",
    "tests/ops/test_admin_actions.py": "the password of throwaway users in the test database",
    "tests/ops/test_admin_browser.py":
        "the login of a throwaway operator in the browser tests' temporary database",
    "tests/ops/test_bad_input.py": "the password of throwaway users in the test database",
    "tests/ops/test_demo.py": "the admin password and Flower login of the demo test's own short-lived demo",
    "tests/ops/test_security.py": "the password of throwaway users in the test database",
    "tests/ops/test_status_api.py": "the password of throwaway users in the test database",
}
# detect-secrets' default filters but one: is_indirect_reference drops any line holding a call,
# and so hid `create_user(..., password="...")` and the literal defaults of environment lookups.
FILTERS_OFF = {"detect_secrets.filters.heuristic.is_indirect_reference"}
PROJECT_PLUGINS = {"UrlPasswordDetector", "LiteralDefaultDetector", "AssignmentDetector"}


@pytest.fixture(scope="module")
def repository_scan() -> tuple[list[str], list[secrets_scan.Finding]]:
    return secrets_scan.scan_repository(ROOT)


def test_no_secret_is_committed(repository_scan):
    files, findings = repository_scan
    # Every tracked text file is read, the scan's own files too.
    assert {"tests/ops/test_security.py", "tests/ops/secrets_scan.py", "tests/ops/secrets_plugins.py",
            "docker-compose.yml", "deploy/deploy.sh", "README.md"} <= set(files) and len(files) > 100
    verdicts = secrets_scan.reviewed(secrets_scan.load_baseline(ROOT))
    assert [str(f) for f in findings if verdicts.get((f.path, f.kind, f.hashed_secret)) is not False] \
        == [], f"a secret, or a finding to review into {secrets_scan.BASELINE}"


def test_the_baseline_holds_only_reviewed_findings_that_are_still_there(repository_scan):
    _, findings = repository_scan
    baseline = secrets_scan.load_baseline(ROOT)
    assert set(baseline["results"]) == set(BASELINE_REVIEW), "give each file of the baseline a reason"
    assert [(path, entry["line_number"]) for path, entries in baseline["results"].items()
            for entry in entries if entry.get("is_secret") is not False] == [], "audit these"
    found = {(f.path, f.kind, f.hashed_secret) for f in findings}
    assert set(secrets_scan.reviewed(baseline)) <= found, "drop what is gone from the baseline"


def test_the_baseline_scans_with_every_plugin_and_the_default_filters():
    baseline = secrets_scan.load_baseline(ROOT)
    plugins = {plugin["name"]: plugin.get("path") for plugin in baseline["plugins_used"]}
    assert set(plugins) >= {cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()}
    assert {name: plugins.get(name) for name in PROJECT_PLUGINS} == dict.fromkeys(
        PROJECT_PLUGINS, "file://tests/ops/secrets_plugins.py")
    filters = {f["path"] for f in baseline["filters_used"]}
    defaults = {f["path"] for f in Settings().json()["filters_used"]}
    assert filters >= defaults - FILTERS_OFF and not filters & FILTERS_OFF
    assert not filters & {"detect_secrets.filters.regex.should_exclude_line",
                          "detect_secrets.filters.regex.should_exclude_secret"}


def fake(length: int) -> str:
    """Made-up letters and digits, built when the test runs: no sample is a committed literal."""
    return "".join(random.Random(length).choices(string.ascii_letters + string.digits, k=length))


# Each form must be caught, written in the kind of file it lives in: (file name, text).
SECRET_FORMS = {
    "unquoted-SECRET_KEY": ("deploy.sh", "#!/usr/bin/env bash\nset -euo pipefail\nSECRET_KEY={v}\n"),
    "unquoted-SECRET_KEY-in-an-env-file": (".env", "# local settings\nDEBUG=1\nSECRET_KEY={v}\n"),
    "compose-list-SECRET_KEY": ("docker-compose.yml",
                                "services:\n  web:\n    image: investments-app:latest\n"
                                "    environment:\n      - SECRET_KEY={v}\n"),
    "yaml-POSTGRES_PASSWORD": ("docker-compose.yml",
                               "services:\n  postgres:\n    image: postgres:15\n    environment:\n"
                               "      POSTGRES_PASSWORD: {v}\n"),
    "json-password": ("fixture.json", '{{\n  "host": "db",\n  "user": "app",\n  "password": "{v}"\n}}\n'),
    "11-character-password": ("settings.py", 'DEBUG = False\nDATABASE_PASSWORD = "{v11}"\n'),
    "url-password-with-dollar": (".env", "DEBUG=0\nDATABASE_URL=postgres://app:{v6}${v5}@db:5432/app\n"),
    "export-DJANGO_SECRET_KEY": ("deploy.sh", "#!/usr/bin/env bash\nset -euo pipefail\n"
                                              "export DJANGO_SECRET_KEY={v}\n"),
    "url-password": (".env", "DATABASE_URL=postgres://app:{v}@db:5432/app\n"),
    "url-password-without-user": ("settings.py", 'REDIS_URL = "redis://:{v}@redis:6379/0"\n'),
    "SECRET_KEY-fallback": ("settings.py", 'SECRET_KEY = os.environ.get("SECRET_KEY") or "{v}"\n'),
    "SECRET_KEY-environment-default": ("settings.py",
                                       'SECRET_KEY = os.environ.get("SECRET_KEY", "{v}")\n'),
    "shell-default-password": ("docker-compose.yml",
                               "services:\n  db:\n    environment:\n"
                               "      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD:-{v}}}\n"),
    "status-token": (".env", "MW_STATUS_TOKEN={v}\n"),
    "flower-login": ("flower.sh", "FLOWER_BASIC_AUTH=ops:{v}\n"),
    "private-key": ("id_rsa", "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEA{v}\n"),
    "aws-access-key": ("settings.py", "AWS_KEY = 'AKIA{V16}'\n"),
    "github-token": ("settings.py", "GITHUB = 'ghp_{v36}'\n"),
}
# References and placeholders: no value is committed.
NOT_SECRET_FORMS = {
    "compose-required-reference": ("docker-compose.yml",
                                   "services:\n  web:\n    image: investments-app:latest\n"
                                   "    environment:\n      SECRET_KEY: ${{SECRET_KEY:?set SECRET_KEY}}\n"
                                   "  worker:\n    environment:\n"
                                   "      - DJANGO_SECRET_KEY=${{SECRET_KEY:?set it}}\n"),
    "url-password-reference": (".env", "DATABASE_URL=postgres://app:${{POSTGRES_PASSWORD}}@db/app\n"),
    "environment-lookups": ("settings.py", 'SECRET_KEY = os.environ["SECRET_KEY"]\n'
                                           "KEY = os.environ.get('SECRET_KEY', '')\n"
                                           'TOKEN = os.environ.get("MW_STATUS_TOKEN", "")\n'),
    "f-string-fields": ("settings.py", "url = f'redis://:{{password}}@127.0.0.1:{{port}}/0'\n"),
    "shell-references": ("deploy.sh", 'export DJANGO_SECRET_KEY="$SECRET_KEY"\n'
                                      "export DJANGO_SECRET_KEY=$(openssl rand -hex 32)\n"
                                      'echo "set FLOWER_BASIC_AUTH=user:password" >&2\n'),
    "a-masked-url": ("worker.log", "Connected to redis://:**@127.0.0.1:6379/0\n"),
}


def sample(template: str) -> str:
    return template.format(v=fake(24), v11=fake(11), v6=fake(6), v5=fake(5), v36=fake(36),
                           V16=fake(16).upper())


@pytest.mark.parametrize("form", list(SECRET_FORMS))
def test_the_secret_scan_catches_each_form(form, tmp_path):
    filename, template = SECRET_FORMS[form]
    assert secrets_scan.scan_sample(ROOT, tmp_path, filename, sample(template)) != [], form


@pytest.mark.parametrize("form", list(NOT_SECRET_FORMS))
def test_the_secret_scan_lets_references_and_placeholders_through(form, tmp_path):
    filename, template = NOT_SECRET_FORMS[form]
    assert secrets_scan.scan_sample(ROOT, tmp_path, filename, sample(template)) == []


# -- secrets in logs ---------------------------------------------------------------------------------------


@pytest.fixture
def guarded_services():
    """A private PostgreSQL with a password-only role and a private Redis with a password."""
    pg = PrivatePostgres().start()
    redis = PasswordRedis(traversable_tmpdir("sec-redis-"), free_port(), secrets.token_hex(12))
    redis.start()
    password = secrets.token_hex(12)
    pg.require_password("mw_app", password)
    yield pg, redis, password
    redis.stop()
    shutil.rmtree(redis.directory, ignore_errors=True)
    pg.stop()


@pytest.mark.django_db(transaction=True)
def test_a_worker_run_through_faults_logs_neither_the_database_nor_the_broker_password(
    guarded_services, tmp_path
):
    pg, redis, db_password = guarded_services
    pg.admin(psycopg.sql.SQL("CREATE DATABASE secure OWNER mw_app"))
    url = f"postgres://mw_app:{db_password}@127.0.0.1:{pg.port}/secure"
    db = engine_database(url, redis.url, widgets=2_000)
    db.execute("INSERT INTO engine_app_knob (name, value) VALUES ('sleep', 0.05)")
    # Worker processes: their own database and broker (by env), and their logs are what is read.
    procs = Processes(db.env, tmp_path)
    outputs = []
    try:
        procs.worker("w1")
        procs.beat()
        started = db.manage("backfill", "start", JOB, "--batch-size", "100",
                            "--option", "max_batch_size=100")
        outputs.append(started.stdout + started.stderr)
        wait_until(lambda: (db.scalar("SELECT max(batches_done) FROM migrations_worker_jobrun "
                                      "WHERE job_name = %s", [JOB]) or 0) >= 3,
                   60, message="a few batches")
        redis.stop()  # the worker and beat log their lost broker connection...
        time.sleep(1.5)
        redis.start()
        with psycopg.connect(pg.url(), autocommit=True) as conn:  # ...and its lost session
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = 'mw_app'")
        wait_until(lambda: db.scalar("SELECT status FROM migrations_worker_jobrun "
                                     "WHERE job_name = %s ORDER BY id DESC LIMIT 1", [JOB])
                   == "finished", 120, message="the run to finish")
        # The message the masking protects: a broker that cannot be reached is named in it.
        down = db.manage("backfill", "start", JOB, check=False,
                         env={"TEST_REDIS_URL": f"redis://:{redis.password}@127.0.0.1:1/0"})
        outputs.append(down.stdout + down.stderr)
        assert down.returncode == 6, down.stdout + down.stderr  # broker unreachable
        assert "cannot reach the Celery broker at redis://:**@127.0.0.1:1/0" in down.stderr
    finally:
        procs.stop_all()
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("*.log")))
    everything = logs + "\n".join(outputs)
    assert "redis://:**@127.0.0.1" in logs  # the logs do name the broker, masked
    assert "Connection to broker lost" in logs or "Cannot connect to redis" in logs
    assert db_password not in everything
    assert redis.password not in everything


# -- SQL built safely --------------------------------------------------------------------------------

NOT_INPUT_0006 = ("static names from COLUMNS at the top of the migration (three tables and their "
                  "check constraints), never input")
NOT_INPUT_0012 = ("static names from REDIRECTED_TABLES at the top of the migration (six tables and "
                  "their trigger functions), never input")
MIGRATION_0006 = "apps/backend/src/investments/migrations/0006_alert_uuid_not_null.py"
MIGRATION_0012 = "apps/backend/src/assets/migrations/0012_enqueue_ticker_dedup.py"
MIGRATION_0015 = "apps/backend/src/assets/migrations/0015_drop_duplicate_guard.py"
NOT_INPUT_0015 = ("the reverse re-creates what 0010 and 0012 made from their own module constants "
                  "(literal SQL, imported as written), never input")
# (file, the text of the line): why the SQL written there, which the checker cannot follow or
# which is formatted, is safe. Each must match exactly one finding.
SQL_EXCEPTIONS = {
    ("engine/migrations_worker/operations/ddl.py", "cursor.execute(statement)"):
        "run_step runs the statements of a SafeSQL step (checked where the migration writes them) "
        "or of CreateIndexConcurrently (built with psycopg.sql); never input",
    ("engine/migrations_worker/operations/ddl.py", "schema_editor.execute(statement)"):
        "Django's own deferred DDL (schema editor Statement objects, names quoted by Django)",
    ("engine/migrations_worker/runs/claim.py", "cursor.execute(self.sql, {"):
        "built once per worker in Claimer.__init__ from the constants CLAIM, FOLDED and "
        "RUN_TOTALS, the job's key and table through sql.Identifier; values are parameters",
    ("engine/migrations_worker/management/base.py", "return super().execute(*args, **options)"):
        "Django's BaseCommand.execute (running the command), not a database cursor's",
    ("apps/backend/src/seed/dataset.py",
     "(label, sql.SQL(_expand(template)).format(**_IDENTIFIERS)) for label, template in STEPS"):
        "the seed's SQL templates are constants of the module; _expand only rewrites their hash "
        "macros into SQL (numbers from the templates) at import time",
    (MIGRATION_0006, "steps=[[ADD_CHECK.format(**names)]],"): NOT_INPUT_0006,
    (MIGRATION_0006, 'reverse_steps=[[f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}"]],'):
        NOT_INPUT_0006,
    (MIGRATION_0006, "steps=[[VALIDATE_CHECK.format(**names)]],"): NOT_INPUT_0006,
    (MIGRATION_0006, 'f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",'): NOT_INPUT_0006,
    (MIGRATION_0006, 'f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}",'): NOT_INPUT_0006,
    (MIGRATION_0006, 'reverse_steps=[[f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL"]],'):
        NOT_INPUT_0006,
    (MIGRATION_0012, "*(redirect_trigger(table, function) for table, function in REDIRECTED_TABLES),"):
        NOT_INPUT_0012,
    (MIGRATION_0012, '*([f"DROP TRIGGER IF EXISTS assets_redirect_merged_asset ON {table}"]'):
        NOT_INPUT_0012,
    (MIGRATION_0015, "[REDIRECT.MERGED_AWAY],"): NOT_INPUT_0015,
    (MIGRATION_0015, "[REDIRECT.MERGE_AGAIN],"): NOT_INPUT_0015,
    (MIGRATION_0015, "[GUARD.FUNCTION],"): NOT_INPUT_0015,
    ("engine/migrations_worker/management/commands/grant_app_role.py", "cursor.execute(statement)"):
        "the statements deploy/roles.py composes with psycopg.sql (identifiers, a literal verifier)",
    ("engine/migrations_worker/management/commands/grant_app_role.py",
     "cursor.execute(statements[-1])"):
        "deploy/roles.py's REVOKE, composed with psycopg.sql (the schema as an identifier)",
    ("engine/migrations_worker/operations/reverse.py", "cursor.execute(self.query)"):
        "RefuseReverseWhile's query is a literal `SELECT count(*)` written in the migration that "
        "declares it (tests/unit/test_reverse_policy.py reads each one), never input",
}


def project_python_files() -> list[str]:
    names = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    # The rule is for the code that ships, migrations included: tests and the benchmark harness
    # (bench/, run by hand against throwaway databases) build some SQL from their own constant text.
    return [n for n in names if not n.startswith(("tests/", "bench/"))]


def sql_findings() -> list[Finding]:
    return [finding for name in project_python_files()
            for finding in ModuleCheck(name, (ROOT / name).read_text()).findings()]


def test_every_sql_statement_is_built_from_literals_psycopg_sql_objects_and_parameters():
    files = project_python_files()
    assert {"apps/backend/src/assets/jobs/legacy_columns.py", "apps/backend/src/assets/jobs/ticker_dedup.py",
            "apps/backend/src/investments/jobs/alerts_uuid.py", MIGRATION_0006,
            MIGRATION_0012} <= set(files)  # the jobs and the migrations are scanned
    left, _ = exempt(sql_findings(), SQL_EXCEPTIONS)
    assert [str(finding) for finding in left] == []


def test_every_listed_sql_exception_is_still_needed_and_names_one_line():
    _, matched = exempt(sql_findings(), SQL_EXCEPTIONS)
    assert {key: count for key, count in matched.items() if count != 1} == {}


def check(source: str) -> list[Finding]:
    return ModuleCheck("sample.py", source).findings()


UNSAFE_SAMPLES = {
    "an f-string": "def f(cursor, table):\n    cursor.execute(f'SELECT * FROM {table}')\n",
    "%-formatting": "def f(cursor, t):\n    cursor.execute('SELECT * FROM %s' % t)\n",
    "str.format()": "def f(cursor, t):\n    cursor.execute('SELECT * FROM {}'.format(t))\n",
    "a formatted local": "def f(cursor, t):\n    q = f'DELETE FROM {t}'\n    cursor.execute(q)\n",
    "a formatted constant": "Q = 'SELECT %s' % 'x'\ndef f(conn):\n    conn.execute(Q)\n",
    "sql.SQL of an f-string": "from psycopg import sql\ndef f(c, t):\n"
                              "    c.execute(sql.SQL(f'SELECT {t}'))\n",
    "a caller's f-string": "def one(cursor, query: str):\n    cursor.execute(query)\n"
                           "def g(cursor, t):\n    one(cursor, f'SELECT {t}')\n",
    "unknown origin": "def f(cursor, request):\n    cursor.execute(request.GET['q'])\n",
    # The blind spots of issue #14, each shut:
    "q += t": "def f(cursor, t):\n    q = 'SELECT * FROM '\n    q += t\n    cursor.execute(q)\n",
    "q %= t": "def f(cursor, t):\n    q = 'SELECT * FROM %s'\n    q %= t\n    cursor.execute(q)\n",
    "a constant += t": "Q = 'SELECT * FROM '\nQ += __name__\ndef f(c):\n    c.execute(Q)\n",
    "a parameter sometimes replaced": "def f(cursor, q):\n    if not q:\n        q = 'SELECT 1'\n"
                                      "    cursor.execute(q)\n",
    "a name also unpacked": "def f(cursor, t):\n    q = 'SELECT 1'\n    q, n = f'SELECT {t}', 1\n"
                            "    cursor.execute(q)\n",
    "a name also looped over": "def f(cursor, ts):\n    q = 'SELECT 1'\n    for q in ts:\n"
                               "        cursor.execute(q)\n",
    ".raw()": "def f(Model, t):\n    return Model.objects.raw(f'SELECT * FROM x WHERE y = {t}')\n",
    "RawSQL()": "from django.db.models.expressions import RawSQL\ndef f(qs, t):\n"
                "    return qs.annotate(v=RawSQL('SELECT %s' % t, []))\n",
    "cursor.copy()": "def f(cursor, t):\n    with cursor.copy(f'COPY {t} FROM STDIN') as copy:\n"
                     "        copy.write(b'')\n",
    "RunSQL()": "from django.db import migrations\nT = input()\n"
                "OPERATIONS = [migrations.RunSQL(f'DROP TABLE {T}')]\n",
    "RunSQL(reverse_sql=)": "from django.db import migrations\ndef op(t):\n"
                            "    return migrations.RunSQL('SELECT 1', reverse_sql=[f'DROP TABLE {t}'])\n",
    "RunSQL((sql, params))": "from django.db import migrations\ndef op(t):\n"
                             "    return migrations.RunSQL([('UPDATE x SET y = %s' % t, [])])\n",
    "a SafeSQL step": "from migrations_worker.operations import SafeSQL\ndef op(t):\n"
                      "    return SafeSQL(steps=[['SELECT 1'], [f'ALTER TABLE {t} ADD x int']])\n",
    "a SafeSQL reverse step": "from migrations_worker.operations import SafeSQL\ndef op(t):\n"
                              "    return SafeSQL([['SELECT 1']], [[f'DROP TABLE {t}']])\n",
    "an item of a changed constant": "Q = {'a': 'SELECT 1'}\ndef f(c, k, t):\n"
                                     "    Q[k] = f'SELECT {t}'\n    c.execute(Q[k])\n",
    "SQL passed in **keywords": "from django.db import migrations\ndef op(**options):\n"
                                "    return migrations.RunSQL(**options)\n",
}
SAFE_SAMPLES = {
    "a literal with parameters": "def f(c, x):\n    c.execute('SELECT %s', [x])\n",
    "a module constant": "Q = 'SELECT 1'\ndef f(c):\n    c.execute(Q)\n",
    "a psycopg composition": "from psycopg import sql\ndef f(c, t):\n    c.execute(sql.SQL("
                             "'SELECT * FROM {}').format(sql.Identifier(t)))\n",
    "a helper returning one": "from psycopg import sql\ndef q(t):\n    return sql.SQL('SELECT {}')"
                              ".format(sql.Identifier(t))\ndef f(c):\n    c.execute(q('x'))\n",
    "a pass-through given literals": "def one(cursor, query: str):\n    cursor.execute(query)\n"
                                     "def g(cursor):\n    one(cursor, 'SELECT 1')\n",
    "q += a literal": "def f(c, x):\n    q = 'SELECT * FROM t'\n    if x:\n"
                      "        q += ' WHERE x = %s'\n    c.execute(q, [x])\n",
    "an item of a constant dict": "Q = {'a': 'SELECT 1', 'b': 'SELECT 2'}\ndef f(c, k):\n"
                                  "    c.execute(Q[k])\n",
    ".raw() with parameters": "def f(Model, t):\n    return Model.objects.raw('SELECT * FROM x "
                              "WHERE y = %s', [t])\n",
    "RawSQL() with parameters": "from django.db.models.expressions import RawSQL\ndef f(qs, t):\n"
                                "    return qs.annotate(v=RawSQL('SELECT %s', [t]))\n",
    "cursor.copy() of a composition": "from psycopg import sql\ndef f(cursor, t):\n"
                                      "    with cursor.copy(sql.SQL('COPY {} FROM STDIN')"
                                      ".format(sql.Identifier(t))) as copy:\n        copy.write(b'')\n",
    "copies that are not SQL": "import copy, shutil\ndef f(a, b, d):\n    shutil.copy(a, b)\n"
                               "    return copy.copy(d), d.copy()\n",
    "RunSQL of literals": "from django.db import migrations\nOPERATIONS = [migrations.RunSQL("
                          "['CREATE TABLE x (y int)', ('INSERT INTO x VALUES (%s)', [1])], "
                          "reverse_sql=migrations.RunSQL.noop)]\n",
    "SafeSQL of constants": "from migrations_worker.operations import SafeSQL\nADD = 'ALTER TABLE x "
                            "ADD y int'\nOPERATIONS = [SafeSQL(steps=[[ADD], ['SELECT 1']], "
                            "reverse_steps=None)]\n",
}


@pytest.mark.parametrize("name", list(UNSAFE_SAMPLES))
def test_the_sql_check_flags_sql_built_by_string_formatting(name):
    assert check(UNSAFE_SAMPLES[name]), name


@pytest.mark.parametrize("name", list(SAFE_SAMPLES))
def test_the_sql_check_accepts_literals_compositions_and_parameters(name):
    assert check(SAFE_SAMPLES[name]) == []


def test_an_exemption_names_one_line_not_the_function_or_module_around_it():
    source = ("def run(cursor, statements, t):\n"
              "    for statement in statements:\n"
              "        cursor.execute(statement)\n"
              "    cursor.execute(f'DROP TABLE {t}')\n"
              "Q = sql.SQL(f'SELECT {__name__}')\n"
              "R = sql.SQL(f'SELECT {__file__}')\n")
    exemptions = {("sample.py", "cursor.execute(statement)"): "a reason",
                  ("sample.py", "Q = sql.SQL(f'SELECT {__name__}')"): "a reason"}
    left, matched = exempt(check(source), exemptions)
    assert sorted((f.line, f.function) for f in left) == [(4, "run"), (6, "")]
    assert matched == dict.fromkeys(exemptions, 1)
