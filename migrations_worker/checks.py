"""System checks: the engine works only on PostgreSQL, and says so before anything runs."""

from django.core.checks import Error, register
from django.db import connections


@register("database")
def postgresql_only(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    for alias in connections:
        vendor = connections[alias].vendor
        if vendor != "postgresql":
            errors.append(
                Error(
                    f"Database '{alias}' is {vendor}; the online migration engine needs "
                    "PostgreSQL.",
                    hint="Point DATABASE_URL at a PostgreSQL 13+ server.",
                    id="migrations_worker.E001",
                )
            )
    return errors
