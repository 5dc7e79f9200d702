from django.apps import AppConfig
from django.db.backends.signals import connection_created


class MigrationsWorkerConfig(AppConfig):
    name = "migrations_worker"
    verbose_name = "Online migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every installed app's `jobs` module registers its jobs by name, the way admin.py does.
        from django.db.models.signals import post_init, post_save
        from django.utils.module_loading import autodiscover_modules

        from . import celery, checks, pg  # noqa: F401 - the Celery app is every thread's default
        from .models import JobRun
        from .progress import progress_loaded, progress_saved

        autodiscover_modules("jobs")
        connection_created.connect(pg.check_client_connection, dispatch_uid="mw-client-check")
        # The ETA at 10% and 50%, taken by the batch that passes each (progress.progress_saved).
        post_init.connect(progress_loaded, sender=JobRun, dispatch_uid="migrations_worker.eta")
        post_save.connect(progress_saved, sender=JobRun, dispatch_uid="migrations_worker.eta")
