"""`manage.py lint_migrations [APP ...]`: the migration-safety gate of CI.

Lints every migration of the named apps with squawk over their `sqlmigrate` SQL and with the
Django-level rules of `migrations_worker.lint`. With no app named, it lints the apps listed in
`settings.MIGRATIONS_WORKER["LINT_APPS"]`; when that is not set, every installed app with
migrations that is the project's own (its code not under site-packages), so a dependency's
migrations are never held to this project's rules. A rule that does not apply to one migration
is excused in that migration's file: `LINT_EXCEPTIONS = {"rule-id": "why it is safe here"}`.

Exit codes: 0 clean, 1 violations (or the linter could not run), 2 bad input (unknown app).
"""

from __future__ import annotations

import json
from collections import defaultdict

from django.core.management.base import BaseCommand, CommandError

from migrations_worker import conf, lint
from migrations_worker.management.arguments import add_database
from migrations_worker.management.base import EngineErrors


class Command(EngineErrors, BaseCommand):
    help = "Check every migration of the project's apps for operations unsafe on a live database."
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "app_labels", nargs="*", metavar="APP",
            help="apps to lint (default: MIGRATIONS_WORKER['LINT_APPS'] in settings, else every "
            f"installed app with migrations outside site-packages; here: {', '.join(lint.lint_apps())})",
        )
        add_database(parser)  # the target whose connection renders the SQL
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument("--json", action="store_const", dest="format", const="json",
                            help="the same as --format json")

    def handle(self, *args, **options) -> None:
        try:
            result = lint.lint(options["app_labels"] or None,
                               database=conf.require_target(options["database"]))
        except LookupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if options["format"] == "json":
            self.stdout.write(json.dumps({
                "migrations": result.migrations,
                "violations": [v.as_dict() for v in result.violations],
            }, indent=2))
        else:
            self._report(result)
        if result.violations:
            raise CommandError(
                f"{len(result.violations)} migration-safety violation(s); fix them, or excuse one "
                "in its migration with LINT_EXCEPTIONS = {'rule-id': 'why it is safe here'}",
                returncode=1,
            )

    def _report(self, result: lint.LintResult) -> None:
        by_migration = defaultdict(list)
        for violation in result.violations:
            by_migration[violation.key].append(violation)
        for key in result.migrations:
            for violation in by_migration.get(key, []):
                self.stdout.write(self.style.ERROR(violation.format()))
        clean = len(result.migrations) - len(by_migration)
        self.stdout.write(
            f"lint_migrations: {len(result.migrations)} migration(s) checked, {clean} clean, "
            f"{len(result.violations)} violation(s)"
        )
