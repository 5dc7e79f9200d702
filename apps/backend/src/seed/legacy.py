"""Bringing a database to the legacy state the demo starts from."""

from __future__ import annotations

from django.core.management import call_command

# The domain apps at their initial migration, everything they and the engine need, current.
LEGACY_TARGETS: list[tuple[str, str | None]] = [
    ("contenttypes", None),
    ("auth", None),
    ("assets", "0001_initial"),
    ("portfolios", "0001_initial"),
    ("investments", "0001_initial"),
    ("migrations_worker", None),
    ("django_celery_results", None),
    ("sessions", None),
    ("admin", None),
]


def migrate_to_legacy(verbosity: int = 0) -> None:
    """Only for a database with no domain tables yet: `migrate assets 0001_initial` on a newer
    database would unapply the fixes."""
    for app, target in LEGACY_TARGETS:
        call_command("migrate", app, *([target] if target else []), verbosity=verbosity)
