"""The whole run: render every migration, apply the Django-level rules and squawk, then the
exceptions written next to each migration."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import django_rules, squawk
from .excuses import apply_exceptions
from .findings import Violation
from .render import render

PROJECT_APPS = ("assets", "portfolios", "investments", "migrations_worker")
SQUAWK_CONFIG = Path(__file__).resolve().parents[2] / ".squawk.toml"


@dataclass(frozen=True)
class LintResult:
    migrations: list[str]
    violations: list[Violation]


def lint(app_labels: Iterable[str] = PROJECT_APPS, *, database: str = "default",
         squawk_config: Path = SQUAWK_CONFIG) -> LintResult:
    """Lint every migration of `app_labels`; the violations left after the written exceptions."""
    linted = render(set(app_labels), database)
    for item in linted:
        django_rules.check(item)
    squawk.run(linted, squawk_config)
    violations: list[Violation] = []
    for item in linted:
        violations += apply_exceptions(item)
    return LintResult([item.key for item in linted], violations)
