"""Which apps `lint_migrations` checks when none are named: the setting, else the project's own."""

from django.apps import apps

from migrations_worker.lint import lint_apps


def test_lint_apps_setting_names_the_apps_linted_by_default(settings):
    settings.MIGRATIONS_WORKER = {**settings.MIGRATIONS_WORKER, "LINT_APPS": ["engine_app"]}
    assert lint_apps() == ["engine_app"]


def test_without_the_setting_the_projects_apps_with_migrations_are_linted_and_installed_packages_not(
    settings,
):
    settings.MIGRATIONS_WORKER = {k: v for k, v in settings.MIGRATIONS_WORKER.items() if k != "LINT_APPS"}
    linted = lint_apps()
    assert {"migrations_worker", "engine_app"} <= set(linted)
    assert not {"auth", "contenttypes", "admin", "sessions", "django_celery_results"} & set(linted)
    assert "seed" in {config.label for config in apps.get_app_configs()}
    assert "seed" not in linted  # installed, but without migrations
