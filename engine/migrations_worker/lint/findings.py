"""What the linter reports (`Violation`) and what it reports on (`LintedMigration`).

Every layer adds its findings to the `LintedMigration` they are about, through `add`, which
takes the text from the catalogue: a rule's message and advice are written in one place only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from .catalogue import RULES


@dataclass(frozen=True)
class Violation:
    app_label: str
    migration: str
    rule: str
    message: str
    instead: str
    source: str = "django"  # or "squawk"
    sql: str = ""

    @property
    def key(self) -> str:
        return f"{self.app_label}.{self.migration}"

    def format(self) -> str:
        text = f"{self.key}: [{self.rule}] {self.message}"
        if self.sql:
            text += f"\n    sql: {self.sql}"
        if self.instead:
            text += f"\n    instead: {self.instead}"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "key": self.key}


@dataclass
class LintedMigration:
    """One migration as the linter saw it: its SQL, and the facts the rules need."""

    migration: Migration
    before: ProjectState  # the project state just before it
    exceptions: dict[str, object]
    sql: str = ""
    new_tables: set[str] = field(default_factory=set)
    parents: list[Migration] = field(default_factory=list)  # the migrations it depends on
    violations: list[Violation] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.migration.app_label}.{self.migration.name}"

    def add(self, rule: str, detail: str = "") -> None:
        """Report `rule` from the catalogue, `detail` saying where (a field, an index, ...)."""
        spec = RULES[rule]
        message = f"{detail}: {spec.summary}" if detail else spec.summary
        self.violations.append(
            Violation(self.migration.app_label, self.migration.name, rule, message, spec.instead)
        )
