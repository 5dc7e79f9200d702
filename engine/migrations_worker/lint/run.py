"""The whole run: which apps, then render every migration, apply the Django-level rules and
squawk, then the exceptions written next to each migration."""

from __future__ import annotations

import site
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.db.migrations.loader import MigrationLoader

from .. import conf
from . import django_rules, squawk
from .excuses import apply_exceptions
from .findings import Violation
from .render import render


@dataclass(frozen=True)
class LintResult:
    migrations: list[str]
    violations: list[Violation]


def lint(app_labels: Iterable[str] | None = None, *, database: str = "default",
         squawk_config: Path | None = None) -> LintResult:
    """Lint every migration of `app_labels` (default: `lint_apps()`); the violations left after
    the written exceptions. squawk's configuration: `squawk_config`, else the site's
    (`MIGRATIONS_WORKER["SQUAWK_CONFIG"]`, by default the one the engine ships)."""
    linted = render(set(lint_apps() if app_labels is None else app_labels), database)
    for item in linted:
        django_rules.check(item)
    squawk.run(linted, Path(squawk_config or conf.get("SQUAWK_CONFIG")))
    violations: list[Violation] = []
    for item in linted:
        violations += apply_exceptions(item)
    return LintResult([item.key for item in linted], violations)


def lint_apps() -> list[str]:
    """The apps linted when none are named: `settings.MIGRATIONS_WORKER["LINT_APPS"]`, or, when
    that is not set, every installed app with migrations whose code is not an installed package
    (not under site-packages), i.e. the project's own: a dependency's migrations (Django's
    contrib apps, ...) were written for it, not checked against this project's rules."""
    configured = conf.get("LINT_APPS")
    if configured is not None:
        return list(configured)
    with_migrations = {app for app, _name in MigrationLoader(None).disk_migrations}
    packages = _installed_package_dirs()
    return [
        config.label for config in apps.get_app_configs()
        if config.label in with_migrations
        and not any(Path(config.path).resolve().is_relative_to(p) for p in packages)
    ]


def _installed_package_dirs() -> set[Path]:
    """Where pip installs packages for this interpreter (the virtualenv's, the system's, the user's)."""
    dirs = {*site.getsitepackages(), site.getusersitepackages(),
            sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return {Path(d).resolve() for d in dirs}
