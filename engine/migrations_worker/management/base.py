"""What every operator command shares: the engine's errors become a clean message and the exit
code of their type (`exceptions.ExitCode`, one table for every command)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_worker.exceptions import MigrationsWorkerError


class EngineErrors:
    """Mix into a management command: a MigrationsWorkerError leaves it as a CommandError with
    the error's exit code, never a traceback."""

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except MigrationsWorkerError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc


class EngineCommand(EngineErrors, BaseCommand):
    pass
