"""`manage.py demo_prepare`: get the demo database to where the online migration starts,
or say that it already started. Safe to run again at any point: it never goes backwards."""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

from seed.dataset import SIZES
from seed.legacy import migrate_to_legacy
from seed.schema import legacy_state_problems


def has_domain_tables() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('assets_asset') IS NOT NULL")
        return cursor.fetchone()[0]


def has_assets() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM assets_asset)")
        return cursor.fetchone()[0]


class Command(BaseCommand):
    help = "Migrate a fresh database to the legacy schema and seed it; leave a started one alone."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--size", default="small", choices=list(SIZES))
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, **options) -> None:
        if not has_domain_tables():
            self.stdout.write("fresh database: migrating to the legacy schema")
            migrate_to_legacy()
        with connection.cursor() as cursor:
            missing, past = legacy_state_problems(cursor)
        if past:
            self.stdout.write("the online migration already started here: continuing it")
            return
        if missing:
            migrate_to_legacy()
        if has_assets():
            self.stdout.write("legacy database already seeded")
            return
        call_command("seed_demo", size=options["size"], seed=options["seed"], stdout=self.stdout)
