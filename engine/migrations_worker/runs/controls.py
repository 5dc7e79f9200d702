"""The operator's controls, tabled once: what each does, which statuses allow it and what the
operator is told when it is refused. The admin (its actions, buttons and confirmation pages)
and `backfill pause|resume|cancel|retry` both read this table, so the two offer the same
controls and refuse them in the same words.

A control is checked against the run as the caller read it, then applied by `control` or
`dispatch`, which check again under the run's row lock (two operators at once: one wins, the
other is refused)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS

from ..exceptions import InvalidTransition
from ..models import JobRun, RunStatus
from . import control, dispatch

S = RunStatus


@dataclass(frozen=True)
class Control:
    """One operator control: its verb (the command's action, the admin's URL), its wording, what
    it does and in which statuses, and why it is refused in any other."""

    verb: str
    label: str
    function: Callable[..., JobRun]
    done: str  # what the operator is told once it is done
    explains: str  # what the operator is told before confirming it
    allowed: tuple[str, ...]
    refusal: str

    @property
    def action_name(self) -> str:
        """The admin's list action for it."""
        return f"{self.verb}_runs"

    def allows(self, run: JobRun) -> bool:
        return run.status in self.allowed

    def apply(self, run: JobRun, *, actor: str, using: str = DEFAULT_DB_ALIAS) -> JobRun:
        """Do it, or raise InvalidTransition with the refusal when the run's status does not
        allow it."""
        if not self.allows(run):
            raise InvalidTransition(f"run #{run.pk} of {run.job_name} is {run.status}; "
                                    f"{self.refusal}")
        return self.function(run, actor=actor, using=using)


CONTROLS: dict[str, Control] = {
    c.verb: c
    for c in (
        Control("pause", "Pause", control.pause, "pause requested",
                "Workers finish the batch in hand, then stop. Nothing is lost: Resume continues "
                "from the next batch.",
                (S.PENDING, S.RUNNING), "only a pending or running run can be paused"),
        Control("resume", "Resume", dispatch.resume, "resumed",
                "The run goes back to the Celery workers and continues from the next batch.",
                (S.PAUSED, S.PAUSING), "only a paused run can be resumed"),
        Control("cancel", "Cancel", control.cancel, "cancel requested",
                "The run stops between batches and cannot be resumed. Work already done stays "
                "done; a gated migration waits until a new run of the job finishes.",
                (S.PENDING, S.RUNNING, S.PAUSING, S.PAUSED, S.FAILED),
                "a finished, cancelled or cancelling run cannot be cancelled"),
        Control("retry", "Retry failed batches", dispatch.retry, "failed batches requeued",
                "Failed batches and open quarantined keys go back in the queue with fresh attempts "
                "(a run whose verification failed walks its range again), and the run continues "
                "where it stopped. Fix the cause of the error first.",
                (S.FAILED,), "only a failed run can be retried"),
    )
}
