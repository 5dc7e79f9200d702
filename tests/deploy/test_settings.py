"""Settings from the environment: production passes Django's deployment checks, and a wrong
environment fails at start-up with a message that says what to fix.

Each case runs manage.py in a subprocess, because settings are read once per process.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings.base import LOCAL_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]

GOOD_SECRET_KEY = secrets.token_urlsafe(64)


def run_manage(*args: str, env: dict[str, str], timeout: float = 120):
    return run([sys.executable, str(ROOT / "manage.py"), *args], env=env, timeout=timeout)


def run(command: list[str], env: dict[str, str], timeout: float = 120):
    """`command` with `env` over this process's environment, less the settings it would inherit
    (pytest's DJANGO_SETTINGS_MODULE among them: a case without one leaves it out of `env`)."""
    inherited = {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "DEBUG",
                 "DJANGO_SETTINGS_MODULE"}
    clean = {k: v for k, v in os.environ.items() if k not in inherited}
    return subprocess.run(command, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def production_env(test_database_url) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": GOOD_SECRET_KEY,
        "ALLOWED_HOSTS": "investments.example.com",
        "DATABASE_URL": test_database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", LOCAL_REDIS_URL),
    }


def without(env: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != name}


def test_check_deploy_reports_no_issues_with_production_settings(production_env):
    result = run_manage(
        "check", "--deploy", "--database", "default", "--fail-level", "WARNING",
        env=production_env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no issues" in output
    assert "WARNINGS" not in output
    assert "ERRORS" not in output


def test_check_deploy_stays_clean_when_the_environment_asks_for_debug(production_env):
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**production_env, "DEBUG": "1"}
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_would_flag_a_weak_configuration(production_env):
    # The clean report above means something: the same check fails the dev settings.
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={**production_env, "DJANGO_SETTINGS_MODULE": "config.settings.dev"},
    )
    assert result.returncode != 0
    assert "WARNINGS" in result.stderr + result.stdout


@pytest.mark.parametrize(
    "secret_key",
    [None, "", "x" * 49],
    ids=["missing", "empty", "49-characters"],
)
def test_production_refuses_a_missing_or_short_secret_key(production_env, secret_key):
    env = without(production_env, "SECRET_KEY")
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set in the environment (50+ random characters)" in result.stderr


def test_production_refuses_missing_allowed_hosts(production_env):
    result = run_manage("check", env=without(production_env, "ALLOWED_HOSTS"))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must list this deployment's host names" in result.stderr


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_fall_back_to_local_services(production_env, name):
    result = run_manage("check", env=without(production_env, name))
    assert result.returncode != 0
    assert "DATABASE_URL and REDIS_URL must be set in the environment" in result.stderr


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("sqlite:///x.db", "sqlite"), ("mysql://app:secret@127.0.0.1:3306/investments", "mysql")],
)
@pytest.mark.parametrize("settings_module", ["config.settings.production", "config.settings.dev"])
def test_non_postgresql_database_url_is_refused_with_a_clear_message(
    production_env, url, scheme, settings_module
):
    env = {**production_env, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": settings_module}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured" in result.stderr
    assert f"DATABASE_URL uses '{scheme}', but this project runs only on PostgreSQL" in (
        result.stderr
    )
    assert "Use a postgres:// URL." in result.stderr
    assert not (ROOT / "x.db").exists()


def test_production_ignores_debug_from_the_environment(production_env):
    result = run_manage(
        "shell", "-c", "from django.conf import settings; print('DEBUG', settings.DEBUG)",
        env={**production_env, "DEBUG": "true"},
    )
    assert result.returncode == 0, result.stderr
    assert "DEBUG False" in result.stdout.splitlines()


# --- a process without a settings module ------------------------------------------------------

SHOW_SETTINGS = ("from django.conf import settings; "
                 "print('SETTINGS', settings.SETTINGS_MODULE, 'DEBUG', settings.DEBUG)")


def test_manage_py_without_a_settings_module_runs_production_never_debug(production_env):
    # The image's environment with DJANGO_SETTINGS_MODULE gone (a manifest that replaced it).
    result = run_manage("shell", "-c", SHOW_SETTINGS,
                        env={**without(production_env, "DJANGO_SETTINGS_MODULE"), "DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert "SETTINGS config.settings.production DEBUG False" in result.stdout.splitlines()


def test_manage_py_without_settings_or_secrets_refuses_to_start_and_names_the_dev_settings():
    # A checkout (or a host) where nothing is configured: no DEBUG=True run with a known key.
    result = run_manage("shell", "-c", SHOW_SETTINGS, env={})
    assert result.returncode != 0
    assert "DEBUG" not in result.stdout
    assert "SECRET_KEY must be set in the environment" in result.stderr
    assert "DJANGO_SETTINGS_MODULE=config.settings.dev" in result.stderr


def test_wsgi_without_a_settings_module_takes_the_same_production_settings(production_env):
    result = run([sys.executable, "-c", f"import config.wsgi; {SHOW_SETTINGS}"],
                 env={**without(production_env, "DJANGO_SETTINGS_MODULE"),
                      "PYTHONPATH": os.pathsep.join(map(str, (ROOT / "engine",
                                                             ROOT / "apps" / "backend" / "src")))})
    assert result.returncode == 0, result.stderr
    assert "SETTINGS config.settings.production DEBUG False" in result.stdout.splitlines()


def test_the_celery_app_without_a_settings_module_refuses_to_start(production_env):
    # The engine assumes no project: its worker names no default settings module, so it fails
    # rather than guessing (and never reaches development settings).
    result = run([str(Path(sys.executable).parent / "celery"), "-A", "migrations_worker", "worker",
                  "-Q", "migrations", "--pool", "solo"],
                 env={**without(production_env, "DJANGO_SETTINGS_MODULE"),
                      "PYTHONPATH": os.pathsep.join(map(str, (ROOT / "engine",
                                                             ROOT / "apps" / "backend" / "src")))},
                 timeout=60)
    assert result.returncode != 0
    assert "settings are not configured" in result.stderr
