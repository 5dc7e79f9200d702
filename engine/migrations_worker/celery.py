"""The Celery app (`celery -A migrations_worker worker -Q migrations`).

Delivery guarantees come from settings (`CELERY_*` in config/settings/base.py): tasks are
acknowledged late and rejected back to the queue when a worker dies, one message prefetched at a
time, routed to the dedicated `migrations` queue. The engine does not rely on them for
correctness: progress lives in PostgreSQL, and a beat task re-dispatches runs whose heartbeat
went stale.

The settings module comes from DJANGO_SETTINGS_MODULE, as for every Django process: the engine
assumes no project, so a process started without it fails instead of running some default.
"""

from celery import Celery

app = Celery("migrations_worker")
# The default app in every thread: a web server's request threads send tasks too (the admin's
# resume and retry), and without this they would fall back to Celery's built-in default broker.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["migrations_worker"])
