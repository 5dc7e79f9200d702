"""`manage.py lint_migrations [APP ...]`: the migration-safety gate of CI.

Lints every migration of the named apps (default: assets, portfolios, investments,
migrations_worker) with squawk over their `sqlmigrate` SQL and with the Django-level rules of
`migrations_worker.lint`. A rule that does not apply to one migration is excused in that
migration's file: `LINT_EXCEPTIONS = {"rule-id": "why it is safe here"}`.

Exit codes: 0 clean, 1 violations (or the linter could not run), 2 bad input (unknown app).
"""

from __future__ import annotations

import json
from collections import defaultdict

from django.core.management.base import BaseCommand, CommandError

from migrations_worker import lint


class Command(BaseCommand):
    help = "Check every migration of the project's apps for operations unsafe on a live database."
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("app_labels", nargs="*", metavar="APP",
                            help=f"apps to lint (default: {', '.join(lint.PROJECT_APPS)})")
        parser.add_argument("--database", default="default")
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def handle(self, *args, **options) -> None:
        labels = options["app_labels"] or list(lint.PROJECT_APPS)
        try:
            result = lint.lint(labels, database=options["database"])
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
