from django.apps import AppConfig


class MigrationsWorkerConfig(AppConfig):
    name = "migrations_worker"
    verbose_name = "Online migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every installed app's `jobs` module registers its jobs by name, the way admin.py does.
        from django.utils.module_loading import autodiscover_modules

        from . import celery, checks  # noqa: F401 - the Celery app is every thread's default

        autodiscover_modules("jobs")
