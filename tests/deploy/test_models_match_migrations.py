"""Every app's models are what its migrations build: `makemigrations --check --dry-run` over the
whole project (the engine, the investments apps, tests.engine_app, Django's and Celery's own), so a
model changed without its migration fails here naming the app, not on a deploy that finds the
table short of a column."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command

pytestmark = pytest.mark.django_db  # makemigrations reads django_migrations (consistent history)

PROJECT_APPS = {"migrations_worker", "assets", "portfolios", "investments", "engine_app"}


def apps_with_migrations() -> set[str]:
    """The installed apps that keep migrations (a `migrations` package next to their models)."""
    found = set()
    for config in apps.get_app_configs():
        try:
            __import__(f"{config.name}.migrations")
        except ModuleNotFoundError:
            continue
        found.add(config.label)
    return found


def test_the_check_covers_the_engine_the_project_s_apps_and_the_test_app():
    assert apps_with_migrations() >= PROJECT_APPS, PROJECT_APPS - apps_with_migrations()


def test_no_installed_app_has_a_model_change_without_its_migration():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:  # --check exits 1 when some app needs a migration
        missing = re.findall(r"Migrations for '([\w.]+)'", out.getvalue())
        pytest.fail(f"models changed without a migration in app(s) {', '.join(missing)} "
                    f"(exit {exit_.code}); run `python manage.py makemigrations "
                    f"{' '.join(missing)}`:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue(), out.getvalue()
