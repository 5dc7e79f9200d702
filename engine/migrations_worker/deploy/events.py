"""What a deploy tells whoever runs it, as data: the executor reports events, the command (or
a test) renders them. Nothing here prints, and nothing in the executor knows who listens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..exceptions import JobNotFinished
from ..models import JobRun
from ..operations import Stage


@dataclass
class Pass:
    """One pass over the plan: what was applied and what is held behind which gate."""

    applied: list[str] = field(default_factory=list)
    gated: dict[str, str] = field(default_factory=dict)  # migration -> job it waits for
    held: dict[str, str] = field(default_factory=dict)  # migration -> held migration it needs
    closed: dict[str, JobNotFinished] = field(default_factory=dict)  # job -> why
    progress: dict[str, str] = field(default_factory=dict)  # job -> its run, once enqueued
    later: dict[str, Stage] = field(default_factory=dict)  # migration -> the stage it waits for

    @property
    def jobs(self) -> list[str]:
        return sorted(set(self.gated.values()))


@dataclass(frozen=True)
class Applying:
    """A migration starts to apply (its work may take long: say so before, not after)."""

    migration: str


@dataclass(frozen=True)
class Applied:
    migration: str


@dataclass(frozen=True)
class Note:
    text: str
    warning: bool = False


@dataclass(frozen=True)
class StoppedAtGates:
    """A pass ended at closed gates, their jobs enqueued."""

    result: Pass


@dataclass(frozen=True)
class Waiting:
    """One poll while waiting at the gates: each job's run as it stands."""

    runs: dict[str, JobRun | None]


Event = Applying | Applied | Note | StoppedAtGates | Waiting


class Reporter(Protocol):
    """Where the executor's events go, one at a time, as they happen."""

    def __call__(self, event: Event) -> None: ...
