"""`MW_LOG_FORMAT=json`: every process logs one JSON object per line, and what a record is about
(run, job, target, batch) is a field of it, not only words in its message."""

import json

import pytest

from migrations_worker.models import JobBatch, JobRun, RunStatus
from migrations_worker.runs import dispatch
from tests.engine_app.support import JOB, make_widgets
from tests.workers import Processes, wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "near", "far"])
JSON_LOGS = {"MW_LOG_FORMAT": "json"}


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def batch_records(found: list[dict]) -> list[dict]:
    return [r for r in found if r["logger"] == "migrations_worker.runner" and "rows" in r]


def test_a_foreground_run_with_json_logs_writes_only_json_lines_with_the_run_as_fields(manage):
    make_widgets(300, using="near")
    ran = manage("backfill", "run", JOB, "--batch-size", "100", "--option", "max_batch_size=100",
                 "--database", "near", env=JSON_LOGS)
    assert ran.returncode == 0, ran.stderr
    found = records(ran.stderr)  # every line is one JSON object: nothing else is written there
    run = JobRun.objects.using("near").filter(job_name=JOB).latest("id")
    batches = batch_records(found)
    assert len(batches) == 3
    for record, batch in zip(batches, JobBatch.objects.using("near").filter(run=run).order_by("id"),
                             strict=True):
        assert {k: record[k] for k in ("run", "job", "target", "batch", "start_key", "end_key",
                                       "rows", "attempt", "level")} == {
            "run": run.pk, "job": JOB, "target": "near", "batch": batch.pk,
            "start_key": batch.start_key, "end_key": batch.end_key, "rows": 100, "attempt": 1,
            "level": "INFO"}
        assert record["duration_ms"] >= 0
        assert f"run={run.pk} job={JOB}" in record["message"]  # the words stay for people
    finished = next(r for r in found if r.get("status") == RunStatus.FINISHED)
    assert (finished["run"], finished["job"], finished["target"], finished["from_status"]) == (
        run.pk, JOB, "near", RunStatus.RUNNING)
    assert all(r["time"].endswith("+00:00") for r in found)


def test_a_celery_worker_with_json_logs_writes_its_batches_as_json_with_the_run_as_fields(
    celery_env, tmp_path
):
    make_widgets(200)
    procs = Processes({**celery_env, **JSON_LOGS}, tmp_path)
    try:
        procs.worker("w1")
        run = dispatch.start(JOB, batch_size=100, options={"max_batch_size": 100})
        wait_until(lambda: JobRun.objects.get(pk=run.pk).status == RunStatus.FINISHED, 60,
                   message="the run to finish on the worker")
    finally:
        procs.stop_all()
    lines = (tmp_path / "w1.log").read_text().splitlines()
    # Celery's banner is printed, not logged; every log record is a JSON object, the engine's too.
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert not [line for line in lines if "run=" in line and not line.startswith("{")]
    batches = batch_records(logged)
    assert {(r["run"], r["job"], r["target"], r["rows"]) for r in batches} == {
        (run.pk, JOB, "default", 100)}
    assert sorted(r["batch"] for r in batches) == sorted(
        JobBatch.objects.filter(run=run).values_list("id", flat=True))
    assert any(r["logger"] == "celery.apps.worker" and r["message"].endswith("ready.")
               for r in logged)


def test_an_unknown_log_format_is_refused_naming_the_choices(manage):
    refused = manage("check", env={"MW_LOG_FORMAT": "xml"})
    assert refused.returncode != 0
    assert "MW_LOG_FORMAT='xml': choose text or json" in refused.stderr
