"""Django's `migrate`, with the engine's errors reported as every operator command reports
them: a gated migration reached before its job finished stops with the job's progress, the
commands to finish it, and exit code 8 (pending), not a traceback.

It also brings the engine's own tables up to date first (`executor.apply_engine_migrations`):
a migration of another app that enqueues or finishes a data job runs the engine's code, which
reads those tables as they are now, and Django's plan alone could order it first.

`--database NAME` migrates one target (a declared database); every migration operation of the
engine runs its SQL, gates and jobs on that database. A name that is no declared target exits 2
naming those that are."""

from django.core.management.commands import migrate
from django.db import connections

from migrations_worker import conf
from migrations_worker.deploy.executor import ENGINE_APP, apply_engine_migrations
from migrations_worker.management.base import EngineErrors

# Options under which `migrate` changes nothing, or not forwards: no engine pass first.
READ_ONLY_OR_SPECIAL = ("plan", "check_unapplied", "fake", "fake_initial", "prune")


class Command(EngineErrors, migrate.Command):
    def handle(self, *args, **options):
        conf.require_target(options["database"])
        if options.get("app_label") != ENGINE_APP and not any(
            options.get(name) for name in READ_ONLY_OR_SPECIAL
        ):
            self.verbosity = options["verbosity"]
            apply_engine_migrations(connections[options["database"]],
                                    self.migration_progress_callback)
        return super().handle(*args, **options)
