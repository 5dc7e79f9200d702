"""What every operator command shares: the engine's errors become a clean message and the exit
code of their type (`exceptions.ExitCode`, one table for every command); and one way to print.

Printing, the same in every command:
- `--json` prints the result as JSON and nothing else on stdout (a run in the shape of
  `ops.run_json.run_payload`, wherever it appears);
- `--verbosity 0` prints only the result (and errors, on stderr): no hints, no progress bars;
- `--no-color`, or the `NO_COLOR` environment variable (https://no-color.org), prints no colour
  nor any other terminal styling, even where `--force-color` or `FORCE_COLOR` would;
- text that comes from the database or a job (errors, hold reasons, reports, session queries)
  is printed as it is, never read as rich markup (`shown`): `[bold]` in an error message is
  printed as `[bold]`, and a stray `[/x]` cannot crash the command.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.markup import escape

from migrations_worker.exceptions import MigrationsWorkerError


def shown(text: object) -> str:
    """Text from the database or a job, safe inside rich markup: printed literally."""
    return escape(str(text))


class EngineErrors:
    """Mix into a management command: a MigrationsWorkerError leaves it as a CommandError with
    the error's exit code, never a traceback. `NO_COLOR` in the environment is `--no-color`."""

    def execute(self, *args, **options):
        if os.environ.get("NO_COLOR") and not options.get("force_color"):
            options["no_color"] = True
        self.verbosity = options.get("verbosity", 1)
        self.colour = not options.get("no_color")
        self.forced = bool(options.get("force_color"))
        self._console: Console | None = None
        try:
            return super().execute(*args, **options)
        except MigrationsWorkerError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc

    @property
    def console(self) -> Console:
        """The command's rich console on its stdout, obeying --no-color / --force-color."""
        if self._console is None:
            self._console = Console(file=self.stdout, highlight=False, soft_wrap=True,
                                    color_system="auto" if self.colour else None,
                                    force_terminal=True if self.forced and self.colour else None)
        return self._console

    def say(self, text: str, *, markup: bool = True) -> None:
        """A line that is not the result (a hint, a step): left out under --verbosity 0."""
        if self.verbosity >= 1:
            self.console.print(text, markup=markup)

    def print_json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=str))


class EngineCommand(EngineErrors, BaseCommand):
    pass
