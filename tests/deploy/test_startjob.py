"""`manage.py startjob`: a new data job scaffolded in an app of its own, one SQL statement filled
in, then deployed online to the end with real workers; and every request it must refuse.

The app (`thermo`, one table of readings) is written under tmp_path and installed by a settings
module of its own, so only the subprocesses (manage.py, the Celery worker) ever see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from migrations_worker.exceptions import ExitCode
from tests.conftest import ROOT
from tests.workers import Processes

JOB = "fahrenheit_from_celsius"
ROWS = 2_500
BATCH_PLACEHOLDER = "TODO(startjob): the batch's SQL"
REMAINING_PLACEHOLDER = "TODO(startjob): count the rows that still need the job"
BATCH = ("UPDATE thermo_reading SET fahrenheit = celsius * 9 / 5 + 32 "
         "WHERE id > %(start)s AND id <= %(end)s AND fahrenheit IS NULL")
REMAINING = "SELECT count(*) FROM thermo_reading WHERE fahrenheit IS NULL"

MODELS = '''
from django.db import models


class Reading(models.Model):
    celsius = models.IntegerField()
    fahrenheit = models.IntegerField(null=True)
'''

INITIAL = '''
from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    initial = True
    stage = Stage.PRE
    dependencies = []
    operations = [
        migrations.CreateModel("Reading", fields=[
            ("id", models.BigAutoField(primary_key=True, serialize=False)),
            ("celsius", models.IntegerField()),
            ("fahrenheit", models.IntegerField(null=True)),
        ]),
    ]
'''

# A post-deploy migration as the app's latest: the scaffold's pre-deploy one must depend on it.
CONTRACT = '''
from django.db import migrations

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.POST
    dependencies = [("thermo", "0001_initial")]
    operations = []
'''


class ScratchApp:
    """`thermo` under `root`, and `manage.py` run with it installed, against `database_url`."""

    def __init__(self, root: Path, database_url: str):
        self.root = root
        self.package = root / "thermo"
        (self.package / "migrations").mkdir(parents=True)
        for path, text in {"__init__.py": "", "models.py": MODELS, "migrations/__init__.py": "",
                           "migrations/0001_initial.py": INITIAL}.items():
            (self.package / path).write_text(text)
        (root / "thermo_settings.py").write_text(
            "from config.settings.test import *  # noqa: F403\n"
            "from config.settings.test import INSTALLED_APPS\n\n"
            'INSTALLED_APPS = [*INSTALLED_APPS, "thermo"]\n')
        self.tests = root / "tests"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "thermo_settings",
            "TEST_REDIS_URL": settings.CELERY_BROKER_URL,
            "PYTHONPATH": os.pathsep.join(map(str, (root, ROOT, ROOT / "engine",
                                                    ROOT / "apps/backend/src"))),
        }

    def manage(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                              env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout)

    def startjob(self, *args: str) -> subprocess.CompletedProcess:
        return self.manage("startjob", "thermo", JOB, "--table", "thermo_reading",
                           "--tests-dir", str(self.tests), *args)

    def fill_in(self, placeholder: str, statement: str) -> None:
        module = self.package / "jobs" / f"{JOB}.py"
        text = module.read_text()
        assert text.count(placeholder) == 1, text
        module.write_text(text.replace(placeholder, statement))

    def migrations(self) -> list[str]:
        return sorted(p.stem for p in (self.package / "migrations").glob("0*.py"))


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def thermo(tmp_path, fresh_database) -> ScratchApp:
    return ScratchApp(tmp_path, fresh_database)


@pytest.fixture
def workers(thermo, tmp_path):
    # Worker processes: they load the scaffolded app, in its own settings (by env).
    procs = Processes(thermo.env, tmp_path)
    yield procs
    procs.stop_all()


@pytest.mark.django_db(transaction=True)
def test_a_scaffolded_job_with_its_sql_filled_in_deploys_online_to_the_end_on_real_workers(
    thermo, workers, fresh_database
):
    ok(thermo.manage("migrate_online", "--stage", "all"))
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO thermo_reading (celsius) SELECT mod(g, 100) FROM generate_series(1, %s) g",
                     [ROWS])

    made = ok(thermo.startjob())
    assert made.stderr == ""  # the table is there: nothing to warn about
    written = [line.removeprefix("wrote ") for line in made.stdout.splitlines()
               if line.startswith("wrote ")]
    assert [Path(p).name for p in written] == [
        f"{JOB}.py", f"0002_enqueue_{JOB}.py", f"0003_require_{JOB}.py", f"test_{JOB}.py",
        "__init__.py",
    ]
    assert f"backfill status {JOB} --watch" in made.stdout
    job_source = (thermo.package / "jobs" / f"{JOB}.py").read_text()
    assert "class FahrenheitFromCelsius(Job):" in job_source
    assert 'table = "thermo_reading"' in job_source and 'key = "id"' in job_source
    assert job_source.count("TODO(startjob):") >= 5

    # Its test module fails, test by test, until the rules are pinned.
    stubs = subprocess.run([sys.executable, "-m", "pytest", str(thermo.tests), "-q", "-p", "no:django",
                            "-p", "no:cacheprovider", "--rootdir", str(thermo.tests)],
                           capture_output=True, text=True, timeout=120)
    assert stubs.returncode == 1 and "4 failed" in stubs.stdout, stubs.stdout
    ok(thermo.manage("lint_migrations", "thermo"))

    thermo.fill_in(BATCH_PLACEHOLDER, BATCH)
    thermo.fill_in(REMAINING_PLACEHOLDER, REMAINING)
    workers.worker("w1")
    pre = ok(thermo.manage("migrate_online", "--stage", "pre", "--wait", "--timeout", "120"))
    assert f"applying thermo.0002_enqueue_{JOB}... OK" in pre.stdout
    ok(thermo.manage("backfill", "wait", JOB, "--timeout", "120"))
    with psycopg.connect(fresh_database) as conn:
        status, rows_done, actor = conn.execute(
            "SELECT r.status, r.rows_done, e.actor FROM migrations_worker_jobrun r "
            "JOIN migrations_worker_jobrunevent e ON e.run_id = r.id "
            "WHERE r.job_name = %s ORDER BY e.id LIMIT 1", [JOB]).fetchone()
    assert (status, rows_done, actor) == ("finished", ROWS, "migrate")

    post = ok(thermo.manage("migrate_online", "--stage", "post", MW_GATE_INLINE_LIMIT="0"))
    assert f"applying thermo.0003_require_{JOB}... OK" in post.stdout
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT count(*) FROM thermo_reading "
                            "WHERE fahrenheit IS DISTINCT FROM celsius * 9 / 5 + 32").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM django_migrations WHERE app = 'thermo' "
                            "AND name = %s", [f"0003_require_{JOB}"]).fetchone() == (1,)
    ok(thermo.manage("migrate_online", "--check"))


@pytest.mark.django_db(transaction=True)
def test_a_table_not_in_the_database_yet_is_only_a_warning_and_a_post_deploy_parent_is_excused(
    tmp_path, test_database_url
):
    thermo = ScratchApp(tmp_path, test_database_url)
    (thermo.package / "migrations" / "0002_contract.py").write_text(CONTRACT)
    made = thermo.manage("startjob", "thermo", JOB, "--table", "thermo_sensor", "--key", "serial",
                         "--tests-dir", str(thermo.tests))
    assert made.returncode == 0, made.stderr
    assert "table thermo_sensor is not in database 'default': fine if a migration of this deploy " \
           "creates it" in made.stderr
    assert "thermo_sensor is not the table of a model of thermo" in made.stderr
    assert "thermo.0002_contract is post-deploy" in made.stderr
    assert thermo.migrations() == ["0001_initial", "0002_contract", f"0003_enqueue_{JOB}",
                                   f"0004_require_{JOB}"]
    enqueue = (thermo.package / "migrations" / f"0003_enqueue_{JOB}.py").read_text()
    assert '("thermo", "0002_contract"),' in enqueue and "pre-deploy-depends-on-post-deploy" in enqueue
    assert 'key = "serial"' in (thermo.package / "jobs" / f"{JOB}.py").read_text()
    ok(thermo.manage("lint_migrations", "thermo"))


@pytest.mark.django_db(transaction=True)
def test_a_second_startjob_of_the_same_name_writes_over_nothing_and_exits_3(tmp_path, test_database_url):
    thermo = ScratchApp(tmp_path, test_database_url)
    ok(thermo.startjob())
    before = {p: p.read_text() for p in tmp_path.rglob("*.py")}
    again = thermo.startjob()  # registered now, by the module the first one wrote
    assert again.returncode == ExitCode.CONFLICT, again.stderr
    assert f"a job named '{JOB}' is registered already (thermo.jobs.{JOB})" in again.stderr
    assert {p: p.read_text() for p in tmp_path.rglob("*.py")} == before


# -- refused before anything is read or written ----------------------------------------------------


def refusal(*args: str, **options) -> CommandError:
    """The command's refusal: a CommandError with its message and exit code, never a traceback."""
    with pytest.raises(Exception) as refused:
        call_command("startjob", *args, **options)
    assert isinstance(refused.value, CommandError), f"not a refusal: {refused.value!r}"
    return refused.value


@pytest.mark.parametrize(
    ("name", "table", "key", "message"),
    [
        ("Fill-Alerts", "investments_alert", "id", "job name 'Fill-Alerts' is not a lower-case Python"),
        ("1st_backfill", "investments_alert", "id", "is not a lower-case Python identifier"),
        ("class", "investments_alert", "id", "job name 'class' is not"),
        ("fill__alerts", "investments_alert", "id", "single underscores"),
        ("j" * 61, "investments_alert", "id", "is longer than 60 characters"),
        ("fill_alerts", "investments_alert; DROP TABLE x", "id", "table 'investments_alert; DROP"),
        ("fill_alerts", "Investments_Alert", "id", "is not a lower-case SQL identifier"),
        ("fill_alerts", "t" * 64, "id", "is longer than 63 bytes"),
        ("fill_alerts", "investments_alert", "1id", "key '1id' is not a lower-case SQL identifier"),
        ("fill_alerts", "investments_alert", "id)--", "key 'id)--' is not"),
    ],
)
def test_a_name_table_or_key_that_is_not_a_plain_identifier_is_refused_with_exit_2(
    name, table, key, message
):
    refused = refusal("investments", name, table=table, key=key)
    assert refused.returncode == ExitCode.INVALID_INPUT
    assert message in str(refused)


def test_an_unknown_app_is_refused_with_the_installed_ones_named():
    refused = refusal("nosuchapp", "fill_alerts", table="nosuchapp_thing")
    assert refused.returncode == ExitCode.INVALID_INPUT
    assert "unknown app 'nosuchapp'; installed apps: " in str(refused) and "investments" in str(refused)


def test_the_engine_itself_gets_no_job():
    refused = refusal("migrations_worker", "fill_runs", table="migrations_worker_jobrun")
    assert refused.returncode == ExitCode.INVALID_INPUT
    assert "a job lives in the app that owns its table" in str(refused)


def test_a_registered_job_name_is_refused_with_exit_3():
    refused = refusal("investments", "alerts_uuid", table="investments_alert")
    assert refused.returncode == ExitCode.CONFLICT
    assert "a job named 'alerts_uuid' is registered already (investments.jobs.alerts_uuid)" in str(refused)


@pytest.mark.django_db  # with its database at hand, a startjob that did not refuse would write
def test_a_file_that_exists_is_never_written_over(tmp_path):
    rules = ROOT / "apps/backend/src/assets/jobs/merge_rules.py"  # a module of the app, not a job
    before = rules.read_text()
    refused = refusal("assets", "merge_rules", table="assets_asset", tests_dir=tmp_path)
    assert refused.returncode == ExitCode.CONFLICT
    assert f"{rules} exist(s) already: startjob never writes over a file" in str(refused)
    assert rules.read_text() == before and list(tmp_path.iterdir()) == []


def test_an_app_that_keeps_its_jobs_in_one_module_is_told_to_make_it_a_package(tmp_path):
    refused = refusal("engine_app", "fill_widgets", table="engine_app_widget", tests_dir=tmp_path)
    assert refused.returncode == ExitCode.INVALID_INPUT
    assert "engine_app keeps its jobs in one module, jobs.py: make it a package" in str(refused)
