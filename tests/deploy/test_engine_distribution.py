"""The engine as any project installs it: the wheel of `engine/`, installed with its dependencies
from PyPI into a fresh virtualenv that cannot see this repository, runs a scratch project's online
migration on real Celery workers started from that virtualenv: a job made by the installed
`startjob` (with its pre-deploy EnqueueJob and post-deploy RequireJob), filled in where it marks.
The scratch project sets only what a project must: its database, a broker URL, the app in
INSTALLED_APPS and the engine's URLs."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings

from tests.scratch import server_url

ROOT = Path(__file__).resolve().parents[2]
ROWS = 2_500
JOB = "shop_fill_totals"

SETTINGS = '''\
import os
SECRET_KEY = os.environ["SCRATCH_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
    "django.contrib.sessions", "django.contrib.messages", "migrations_worker", "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages"]}}]
ROOT_URLCONF = "scratchsite.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": os.environ["SCRATCH_DB"],
                         "HOST": os.environ["SCRATCH_HOST"], "PORT": os.environ["SCRATCH_PORT"],
                         "USER": os.environ["SCRATCH_USER"], "PASSWORD": os.environ["SCRATCH_PASSWORD"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
CELERY_BROKER_URL = os.environ["SCRATCH_BROKER_URL"]
# The gate waits for the workers rather than finishing the job itself.
MIGRATIONS_WORKER = {"GATE_INLINE_LIMIT": 0}
'''

URLS = '''\
from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls), path("ops/", include("migrations_worker.urls"))]
'''

MANAGE = '''\
import os, sys
from django.core.management import execute_from_command_line
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scratchsite.settings")
execute_from_command_line(sys.argv)
'''

MODELS = '''\
from django.db import models


class Order(models.Model):
    quantity = models.IntegerField()
    unit_cents = models.IntegerField()
    total_cents = models.BigIntegerField(null=True)  # backfilled by jobs/shop_fill_totals.py
'''

INITIAL = '''\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.CreateModel("Order", [
        ("id", models.BigAutoField(primary_key=True, serialize=False)),
        ("quantity", models.IntegerField()),
        ("unit_cents", models.IntegerField()),
        ("total_cents", models.BigIntegerField(null=True)),
    ])]
'''

# What the developer fills in where the scaffold marks it: the batch's one statement and the count.
BATCH_SQL = ("UPDATE shop_order SET total_cents = quantity * unit_cents\n"
             "WHERE id > %(start)s AND id <= %(end)s AND total_cents IS NULL")
REMAINING_SQL = "SELECT count(*) FROM shop_order WHERE total_cents IS NULL"


# The admin's run pages and the status API, rendered from the installed wheel's templates.
PAGES = '''\
import django
django.setup()
from django.contrib.auth.models import User
from django.test import Client
from migrations_worker.models import JobRun

client = Client()
client.force_login(User.objects.create_superuser("ops", "ops@example.invalid", None))
run = JobRun.objects.get()
for url in (f"/admin/migrations_worker/jobrun/{run.pk}/change/", "/admin/migrations_worker/jobrun/",
            "/ops/runs.json"):
    response = client.get(url)
    assert response.status_code == 200 and b"shop_fill_totals" in response.content, (url, response)
'''


def scaffold_job(manage: tuple, project: Path, env: dict[str, str]) -> None:
    """The job and its two migrations (pre: enqueue; post: require) made by the installed
    engine's `startjob`, then filled in where it marks, as a developer does."""
    out = run(*manage, "startjob", "shop", JOB, "--table", "shop_order",
              "--tests-dir", project / "tests", env=env, cwd=project)
    assert "warning" not in out.lower(), out
    module = project / "shop" / "jobs" / f"{JOB}.py"
    text = module.read_text()
    for placeholder, statement in (("TODO(startjob): the batch's SQL", BATCH_SQL),
                                   ("TODO(startjob): count the rows that still need the job",
                                    REMAINING_SQL)):
        assert placeholder in text, placeholder
        text = text.replace(placeholder, statement)
    module.write_text(text)


def write_project(root: Path) -> None:
    for package, files in {
        "scratchsite": {"settings.py": SETTINGS, "urls.py": URLS},
        "shop": {"models.py": MODELS},
        "shop/migrations": {"0001_initial.py": INITIAL},
    }.items():
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        for name, text in files.items():
            (root / package / name).write_text(text)
    (root / "manage.py").write_text(MANAGE)


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 900) -> str:
    result = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture
def engine_venv(tmp_path) -> Path:
    """A fresh virtualenv holding the engine's wheel and its dependencies from PyPI, nothing else."""
    source = tmp_path / "engine-src"  # a copy: the build leaves build/ and egg-info behind
    shutil.copytree(ROOT / "engine", source, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                           "__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("django_migrations_worker-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    return venv


@pytest.fixture
def scratch_env(tmp_path) -> dict[str, str]:
    """A database of the scratch project's own on the running server, and a flushed broker db."""
    name = f"scratch_dist_{os.getpid()}"
    admin_url = server_url("postgres")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise AssertionError(f"PostgreSQL is not reachable ({exc}); start it with "
                             "deploy/services.sh up, or set DATABASE_URL") from exc
    broker = f"{settings.REDIS_URL.rsplit('/', 1)[0]}/{settings.TEST_REDIS_DBS['distribution']}"
    try:
        redis.Redis.from_url(broker, socket_timeout=5).flushdb()
    except redis.ConnectionError as exc:
        raise AssertionError(f"Redis is not reachable at {broker} ({exc}); start it with "
                             "deploy/services.sh up, or set REDIS_URL") from exc
    db = settings.DATABASES["default"]
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    yield {**env, "PYTHONPATH": str(tmp_path / "project"),
           "DJANGO_SETTINGS_MODULE": "scratchsite.settings", "SCRATCH_DB": name,
           "SCRATCH_HOST": db["HOST"], "SCRATCH_PORT": str(db["PORT"]), "SCRATCH_USER": db["USER"],
           "SCRATCH_PASSWORD": db["PASSWORD"] or "", "SCRATCH_BROKER_URL": broker,
           "SCRATCH_SECRET_KEY": secrets.token_hex(16)}
    redis.Redis.from_url(broker).flushdb()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(env: dict[str, str], sql: str) -> list[tuple]:
    url = server_url(env["SCRATCH_DB"])
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def test_the_wheel_installed_in_a_fresh_virtualenv_runs_a_projects_online_migration_on_celery(
        engine_venv, scratch_env, tmp_path):
    project = tmp_path / "project"
    write_project(project)
    python, bin_dir = engine_venv / "bin" / "python", engine_venv / "bin"
    where = run(python, "-c", "import migrations_worker, sysconfig; "
                "print(migrations_worker.__file__); print(sysconfig.get_path('purelib'))",
                env=scratch_env, cwd=project).split()
    assert Path(where[0]).is_relative_to(where[1]) and Path(where[1]).is_relative_to(engine_venv)
    for shipped in ("templates/migrations_worker/live.html", "migrations/0001_initial.py",
                    "lint/squawk.toml"):
        assert (Path(where[0]).parent / shipped).is_file(), shipped

    manage = (python, project / "manage.py")
    run(*manage, "check", env=scratch_env, cwd=project)
    run(*manage, "migrate", "shop", "0001_initial", "-v", "0", env=scratch_env, cwd=project)
    query(scratch_env, "INSERT INTO shop_order (quantity, unit_cents) "
                       f"SELECT g % 7 + 1, g FROM generate_series(1, {ROWS}) g")
    scaffold_job(manage, project, scratch_env)

    logs = [open(tmp_path / f"worker{i}.log", "wb") for i in (1, 2)]  # noqa: SIM115
    workers = [subprocess.Popen(
        [bin_dir / "celery", "-A", "migrations_worker", "worker", "-Q", "migrations,default",
         "--pool", "solo", "-n", f"scratch{i}@%h", "--without-gossip", "--without-mingle",
         "-l", "INFO"], cwd=project, env=scratch_env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True) for i, log in enumerate(logs, 1)]
    try:
        run(*manage, "migrate_online", "--stage", "pre", "--wait", env=scratch_env, cwd=project)
        run(*manage, "migrate_online", "--stage", "post", "--wait", "--timeout", "300",
            env=scratch_env, cwd=project)
    except AssertionError as exc:
        time.sleep(1)
        raise AssertionError(f"{exc}\n" + "\n".join(
            (tmp_path / f"worker{i}.log").read_text(errors="replace")[-3000:] for i in (1, 2))) from None
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        for log in logs:
            log.close()

    assert query(scratch_env, "SELECT count(*) FILTER (WHERE total_cents IS NULL), "
                              "count(*) FILTER (WHERE total_cents = quantity * unit_cents) "
                              "FROM shop_order") == [(0, ROWS)]
    assert query(scratch_env, "SELECT job_name, status FROM migrations_worker_jobrun") == [(JOB, "finished")]
    batch_workers = {row[0].split("/")[0] for row in query(
        scratch_env, "SELECT DISTINCT worker FROM migrations_worker_jobbatch")}
    assert batch_workers and all(name.startswith("scratch") for name in batch_workers), batch_workers
    assert query(scratch_env, "SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY name") == [
        ("0001_initial",), (f"0002_enqueue_{JOB}",), (f"0003_require_{JOB}",)]
    run(python, "-c", PAGES, env=scratch_env, cwd=project)
