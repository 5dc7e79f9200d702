"""Where the data jobs live: each in the app that owns its data, in a file named after it, found
by the engine's autodiscovery, never by an import of the engine's own."""

import pytest

from migrations_worker.job import UndoJob, get_job, job_classes, undo_job_for

DOMAIN_APPS = ("assets", "portfolios", "investments")
SCHEMA_FIX_JOBS = ["alerts_uuid", "legacy_columns", "ticker_dedup"]
# job: the job that undoes it (`backfill undo`)
UNDO_JOBS = {"legacy_columns": "legacy_columns_undo", "ticker_dedup": "ticker_dedup_undo"}
ALL_JOBS = sorted([*SCHEMA_FIX_JOBS, *UNDO_JOBS.values()])


def test_autodiscovery_registers_the_three_schema_fix_jobs_and_their_undos_from_the_domain_apps():
    found = sorted(c.name for c in job_classes() if c.__module__.split(".")[0] in DOMAIN_APPS)
    assert found == ALL_JOBS


@pytest.mark.parametrize(("name", "undo"), UNDO_JOBS.items())
def test_an_undo_is_found_by_the_name_of_the_job_it_undoes(name, undo):
    assert undo_job_for(name).name == undo
    assert isinstance(get_job(undo), UndoJob)


def test_the_engine_registers_no_job_of_its_own():
    assert [c.name for c in job_classes() if c.__module__.split(".")[0] == "migrations_worker"] == []


@pytest.mark.parametrize("name", ALL_JOBS)
def test_a_job_lives_in_its_apps_jobs_package_in_a_file_named_after_it(name):
    job = type(get_job(name))
    app, package, module = job.__module__.split(".")
    assert (package, module) == ("jobs", name)
    assert job.table.startswith(f"{app}_")  # the app walks a table of its own


@pytest.mark.parametrize("name", ALL_JOBS)
def test_a_jobs_class_is_its_name_in_camel_case(name):
    assert type(get_job(name)).__name__ == "".join(part.title() for part in name.split("_"))
