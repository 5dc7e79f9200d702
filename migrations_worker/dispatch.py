"""Sending runs to Celery. The broker only carries "work on run N" nudges; losing one costs
time, never data, because the beat task re-sends runs whose heartbeat went stale."""

from __future__ import annotations

import logging

from .models import JobRun

log = logging.getLogger("migrations_worker.dispatch")


def ensure_broker(timeout: float = 3.0) -> None:
    """Fail fast, before anything is written, when the broker cannot be reached. The message
    names the broker without its password: it ends up in deploy logs and operators' terminals."""
    from kombu.utils.url import maybe_sanitize_url

    from .celery import app
    from .control import BrokerUnavailable

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise BrokerUnavailable(
            f"cannot reach the Celery broker at {maybe_sanitize_url(app.conf.broker_url)}: {exc}. "
            "Start Redis (deploy/services.sh up), or run the job in the foreground with "
            "`backfill run`."
        ) from exc


def send_lanes(run: JobRun) -> None:
    from .tasks import run_slice

    for lane in range(run.workers):
        try:
            run_slice.apply_async(
                (run.pk, run.job_name, run.dispatch_epoch, lane), retry=False
            )
        except Exception:
            log.exception("run=%s could not send lane %s; beat will re-send it", run.pk, lane)
