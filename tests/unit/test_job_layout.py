"""Where the data jobs live: each in the app that owns its data, in a file named after it, found
by the engine's autodiscovery, never by an import of the engine's own.

The jobs are read from the domain apps' `jobs` packages, never listed here: a job added with
`manage.py startjob` is held to these rules without an edit of this file.
"""

import inspect
import os
import pkgutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
from django.apps import apps

from migrations_worker.job import Job, UndoJob, get_job, job_classes, undo_job_for

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "apps" / "backend" / "src"
DOMAIN_APPS = [app for app in apps.get_app_configs() if Path(app.path).is_relative_to(SOURCES)]


def job_modules() -> list[str]:
    """Every module of every domain app's `jobs` package, by its dotted name."""
    found = []
    for app in DOMAIN_APPS:
        if (Path(app.path) / "jobs" / "__init__.py").exists():
            package = import_module(f"{app.name}.jobs")
            found += [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return found


def jobs_defined_in(module_name: str) -> list[type[Job]]:
    module = import_module(module_name)
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, Job) and c.__module__ == module_name]


JOB_MODULES = job_modules()
DOMAIN_JOBS = sorted(job.name for m in JOB_MODULES for job in jobs_defined_in(m))
UNDO_JOBS = sorted(name for name in DOMAIN_JOBS if isinstance(get_job(name), UndoJob))


def test_the_domain_apps_have_jobs_to_check():
    assert {"alerts_uuid", "legacy_columns", "ticker_dedup"} <= set(DOMAIN_JOBS)
    assert UNDO_JOBS


def test_starting_django_registers_every_job_of_the_domain_apps_jobs_packages():
    # In a process of its own: this module imports every job module itself, registering them.
    registered = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from migrations_worker.job import job_names; print(*job_names())"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
             "PYTHONPATH": os.pathsep.join(map(str, (ROOT, ROOT / "engine", SOURCES)))},
    ).stdout.split()
    assert set(DOMAIN_JOBS) <= set(registered)


def test_every_job_class_of_the_domain_apps_jobs_packages_is_registered_and_no_other():
    domain = {app.name for app in DOMAIN_APPS}
    found = sorted(c.name for c in job_classes() if c.__module__.split(".")[0] in domain)
    assert found == DOMAIN_JOBS


@pytest.mark.parametrize("module", JOB_MODULES)
def test_a_module_of_a_jobs_package_defines_one_job_or_only_what_jobs_share(module):
    # A job's module holds that job; the others (merge rules, undo rules) hold no job at all.
    assert len(jobs_defined_in(module)) <= 1


@pytest.mark.parametrize("name", UNDO_JOBS)
def test_an_undo_is_found_by_the_name_of_the_job_it_undoes(name):
    undoes = get_job(name).undoes
    assert undoes in DOMAIN_JOBS
    assert undo_job_for(undoes).name == name


def test_the_engine_registers_no_job_of_its_own():
    assert [c.name for c in job_classes() if c.__module__.split(".")[0] == "migrations_worker"] == []


@pytest.mark.parametrize("name", DOMAIN_JOBS)
def test_a_job_lives_in_its_apps_jobs_package_in_a_file_named_after_it(name):
    job = type(get_job(name))
    app, package, module = job.__module__.split(".")
    assert (package, module) == ("jobs", name)
    owned = {model._meta.db_table for model in apps.get_app_config(app).get_models()}
    assert job.table in owned  # the app walks a table of its own


@pytest.mark.parametrize("name", DOMAIN_JOBS)
def test_a_jobs_class_is_its_name_in_camel_case(name):
    assert type(get_job(name)).__name__ == "".join(part.title() for part in name.split("_"))
