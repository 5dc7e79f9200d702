"""How good was the ETA? Each run keeps the ETA it showed as it passed 10% and 50% (a
checkpoint), and once it finishes each checkpoint is held against the time that was really left.

    error = (predicted - actual) / actual    the seconds left, as predicted at the checkpoint
                                             and as it turned out (finished_at - checkpoint)

-0.25: the ETA promised a quarter less time than it took (too optimistic); +0.5: it took two
thirds of what was promised. Plain values in and out, no database: the engine takes checkpoints
as progress is saved (`progress.take_checkpoints`), and the status API, the metrics and the
benchmark (which has no Django) read the errors through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

CHECKPOINTS = (10, 50)  # percent


def crossed(before: float, after: float) -> list[int]:
    """The checkpoints a batch passed, taking the run from `before` to `after` percent. A batch
    that passes both (a small run) passes both; the one that reaches a checkpoint exactly
    passes it."""
    return [mark for mark in CHECKPOINTS if before < mark <= after]


@dataclass(frozen=True)
class Checkpoint:
    checkpoint: int  # 10 or 50
    percent: float  # where the run really was when it was taken
    at: datetime
    eta_seconds: float


@dataclass(frozen=True)
class EtaError:
    checkpoint: int
    percent: float
    predicted_seconds: float
    actual_seconds: float

    @property
    def error_seconds(self) -> float:
        return self.predicted_seconds - self.actual_seconds

    @property
    def error_ratio(self) -> float | None:
        return self.error_seconds / self.actual_seconds if self.actual_seconds > 0 else None

    def describe(self) -> str:
        ratio = self.error_ratio
        shown = f"{ratio:+.0%}" if ratio is not None else "n/a"
        return (f"ETA at {self.checkpoint}%: {shown} (predicted {self.predicted_seconds:.1f}s "
                f"left, took {self.actual_seconds:.1f}s)")


def eta_errors(checkpoints: Iterable[Checkpoint], finished_at: datetime | None) -> list[EtaError]:
    """Each checkpoint against the actual end, in checkpoint order; none before the end."""
    if finished_at is None:
        return []
    return [EtaError(c.checkpoint, c.percent, c.eta_seconds,
                     max(0.0, (finished_at - c.at).total_seconds()))
            for c in sorted(checkpoints, key=lambda c: c.checkpoint)]
