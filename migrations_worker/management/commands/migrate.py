"""Django's `migrate`, with the engine's errors reported as every operator command reports
them: a gated migration reached before its job finished stops with the job's progress, the
commands to finish it, and exit code 8 (pending), not a traceback."""

from django.core.management.commands import migrate

from migrations_worker.management.base import EngineErrors


class Command(EngineErrors, migrate.Command):
    pass
