from django.apps import AppConfig
from django.db.backends.signals import connection_created


class MigrationsWorkerConfig(AppConfig):
    name = "migrations_worker"
    verbose_name = "Online migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every installed app's `jobs` module registers its jobs by name, the way admin.py does.
        from django.utils.module_loading import autodiscover_modules

        from . import celery, checks, pg  # noqa: F401 - the Celery app is every thread's default

        autodiscover_modules("jobs")
        connection_created.connect(pg.check_client_connection, dispatch_uid="mw-client-check")
