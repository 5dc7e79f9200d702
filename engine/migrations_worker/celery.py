"""The Celery app (`celery -A migrations_worker worker -Q migrations`).

A project needs no Celery module of its own for the engine: this app reads the project's
`CELERY_*` settings over the engine's defaults (conf.py: one message prefetched at a time, the
broker retried at start, a beat entry re-sending stale runs). The engine's tasks are acknowledged
late, rejected back to the queue when a worker dies, and sent to the `MIGRATIONS_WORKER["QUEUE"]`
queue whatever the project's routes say. The engine does not rely on them for correctness:
progress lives in PostgreSQL, and the beat task re-dispatches runs whose heartbeat went stale.

The settings module comes from DJANGO_SETTINGS_MODULE, as for every Django process: the engine
assumes no project, so a process started without it fails instead of running some default.

Workers and beat log as the project's LOGGING says, not in Celery's own format: one format for
the web, the commands and the workers, so a project that asks for JSON logs (`logs.py`) gets
them from every process. Their level is LOGGING's too (Celery's `-l` no longer sets it).
"""

from typing import Any

from celery import Celery
from celery.signals import setup_logging
from django.conf import settings
from django.utils.log import configure_logging

from .conf import CelerySettings

app = Celery("migrations_worker")
# The default app in every thread: a web server's request threads send tasks too (the admin's
# resume and retry), and without this they would fall back to Celery's built-in default broker.
app.set_default()
app.config_from_object(CelerySettings())
app.autodiscover_tasks(["migrations_worker"])


@setup_logging.connect
def project_logging(**kwargs: Any) -> None:
    """Configure the worker's logging from the project's LOGGING (a receiver here tells Celery
    not to install its own handlers on the root logger)."""
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
