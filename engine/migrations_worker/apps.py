import pkgutil
import sys
from importlib import import_module

from django.apps import AppConfig, apps
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules


def import_job_modules() -> None:
    """Import every installed app's `jobs` module (as admin.py is found) and, when it is a
    package, every module in it: a job registers itself by being there, so adding one
    (`manage.py startjob`) edits no list of imports."""
    autodiscover_modules("jobs")
    for app_config in apps.get_app_configs():
        package = sys.modules.get(f"{app_config.name}.jobs")
        for module in pkgutil.iter_modules(getattr(package, "__path__", ())):
            import_module(f"{package.__name__}.{module.name}")


class MigrationsWorkerConfig(AppConfig):
    name = "migrations_worker"
    verbose_name = "Online migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import celery, checks, pg  # noqa: F401 - the Celery app is every thread's default
        from .fleet import tasks  # noqa: F401 - the fleet's tasks, beside tasks.py's

        import_job_modules()
        connection_created.connect(pg.check_client_connection, dispatch_uid="mw-client-check")
