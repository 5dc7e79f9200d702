"""`manage.py startjob APP NAME --table TABLE [--key KEY] [--tests-dir DIR]`: a new data job,
ready to fill in.

    python manage.py makemigrations shop        # first, the schema change the job fills
    python manage.py startjob shop backfill_order_total --table shop_order

writes, and prints:

    APP/jobs/NAME.py                  the job (class NameInCamelCase, `name`, `table`, `key`);
                                      the engine imports every module of an app's `jobs` package
    APP/migrations/NNNN_enqueue_NAME  pre-deploy: EnqueueJob("NAME")
    APP/migrations/NNNN_require_NAME  post-deploy: RequireJob("NAME")
    DIR/test_NAME.py                  the rules to pin (default DIR: tests/jobs), failing until written
    APP/jobs/__init__.py              when the app has no `jobs` package yet

Every place to fill is marked `TODO(startjob):` (the docstring's rule, the batch's SQL over
`KEY > start AND KEY <= end`, the "done when" count, the tests). The migrations follow the app's
latest one. Nothing is written over; a name, table or key that is not a plain identifier, an
unknown app, or a job that exists already is refused (exit 2 or 3); a table not in the database
yet is only a warning, since this deploy may create it. `--json` prints the files written (and
the warnings) as JSON; `--verbosity 0` prints the files without the next steps.
"""

from __future__ import annotations

from pathlib import Path

from django.db import DEFAULT_DB_ALIAS

from migrations_worker.management import scaffold
from migrations_worker.management.base import EngineCommand


def shown(path: Path) -> str:
    """A path as the author types it: from here when it is under here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Command(EngineCommand):
    help = "Write a new data job, its enqueue and gate migrations and its test module, to fill in."
    requires_system_checks = []  # writing files needs no healthy project, nor a database

    def add_arguments(self, parser) -> None:
        parser.add_argument("app_label", metavar="APP", help="the installed app that owns the table")
        parser.add_argument("name", metavar="NAME", help="the job's name, e.g. backfill_alert_uuid")
        parser.add_argument("--table", required=True, help="the table the job walks")
        parser.add_argument("--key", default="id",
                            help="the integer column it walks the table by (default: id)")
        parser.add_argument("--tests-dir", type=Path, default=Path("tests/jobs"),
                            help="where the job's test module goes (default: tests/jobs)")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS,
                            help="where to look for the table (only to warn if it is not there)")
        parser.add_argument("--json", action="store_true", help="the files written, as JSON")

    def handle(self, *args, **options) -> None:
        name = options["name"]
        job = scaffold.plan(options["app_label"], name, options["table"], options["key"],
                            options["tests_dir"], options["database"])
        for warning in job.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        job.write()
        if options["json"]:
            return self.print_json({"app": options["app_label"], "job": name,
                                    "files": [shown(path) for path in job.files],
                                    "warnings": list(job.warnings)})
        for path in job.files:
            self.stdout.write(f"wrote {shown(path)}")
        if self.verbosity < 1:
            return
        module, tests = shown(job.module), shown(job.tests)
        self.stdout.write(
            "\nNext:\n"
            f"  1. {module}: the docstring's rule, the batch's SQL and the \"done when\" count "
            "(each marked TODO(startjob))\n"
            f"  2. {tests}: pin each rule; until then its tests fail: python -m pytest {tests}\n"
            f"  3. python manage.py lint_migrations {options['app_label']}\n"
            "  4. deploy: python manage.py migrate_online --stage pre (enqueues the job for the "
            "workers), after the rollout python manage.py migrate_online --stage post (waits for "
            f"it); watch it: python manage.py backfill status {name} --watch"
        )
