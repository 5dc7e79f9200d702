"""Django's `migrate`, with the engine's errors reported as every operator command reports
them: a gated migration reached before its job finished stops with the job's progress, the
commands to finish it, and exit code 8 (pending), not a traceback.

It also brings the engine's own tables up to date first (`executor.apply_engine_migrations`):
a migration of another app that enqueues or finishes a data job runs the engine's code, which
reads those tables as they are now, and Django's plan alone could order it first.

`MIGRATIONS_WORKER["MIGRATE_STAGE"] = "pre"` (production settings set it) makes plain `migrate`,
without an app label, the deploy's pre stage: `migrate_online --stage pre --require-complete`,
gates, deploy lock and all. Many pipelines run plain `migrate` as their release step, and the
contract migrations it would otherwise apply break the release still serving. It says how to
apply the rest. `migrate APP [NAME]` names what to apply and is left as Django does it.

`--database NAME` migrates one target (a declared database); every migration operation of the
engine runs its SQL, gates and jobs on that database. A name that is no declared target exits 2
naming those that are."""

from django.core.management.commands import migrate
from django.db import connections

from migrations_worker import conf
from migrations_worker.checks import require_supported_database
from migrations_worker.deploy import lock as deploy_lock
from migrations_worker.deploy.executor import ENGINE_APP, OnlineExecutor, apply_engine_migrations
from migrations_worker.management.base import EngineErrors
from migrations_worker.management.commands.migrate_online import Screen
from migrations_worker.operations import Stage
from migrations_worker.targets import database_flag

# Options under which `migrate` changes nothing, or not forwards: no engine pass first.
READ_ONLY_OR_SPECIAL = ("plan", "check_unapplied", "fake", "fake_initial", "prune")


class Command(EngineErrors, migrate.Command):
    def handle(self, *args, **options):
        using = conf.require_target(options["database"])
        special = any(options.get(name) for name in READ_ONLY_OR_SPECIAL)
        if conf.get("MIGRATE_STAGE") == "pre" and not options.get("app_label") and not special:
            return self.pre_stage_only(using, options)
        if options.get("app_label") != ENGINE_APP and not special:
            self.verbosity = options["verbosity"]
            apply_engine_migrations(connections[using], self.migration_progress_callback)
        return super().handle(*args, **options)

    def pre_stage_only(self, using: str, options) -> None:
        """The pre-deploy stage, as `migrate_online --stage pre --require-complete` applies it."""
        if not options["skip_checks"]:
            self.check(databases=[using])
        flag = database_flag(using)
        self.say(
            "migrate: the pre-deploy stage only (MIGRATIONS_WORKER['MIGRATE_STAGE'] = 'pre'). "
            f"After the rollout: `python manage.py migrate_online --stage post{flag}`; a new "
            f"database, where no release runs yet: `python manage.py migrate_online --stage all{flag}`.",
            markup=False)
        require_supported_database(using)
        screen = Screen(self.stdout, self.style, self.console, options["verbosity"], using)
        try:
            OnlineExecutor(screen, verbosity=options["verbosity"], using=using).deploy(
                stage=Stage.PRE, wait=False, timeout=None, poll=2.0,
                lock_wait=deploy_lock.DEFAULT_WAIT_SECONDS, require_complete=True)
        finally:
            screen.close()
