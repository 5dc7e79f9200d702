"""Asking for an undo: `backfill undo NAME [--group G]...` before its run starts.

A job that can be undone has an `UndoJob` registered under its own name (`undoes = NAME`); this
module finds it, refuses what would race or cannot work, and lets the undo job record what the
operator asked for. The run itself is an ordinary run of the undo job (`dispatch.start`, or
`drive.run_inline` in the foreground), so it is batched, resumable, paused and watched like any.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from ..exceptions import AlreadyActive, Irreversible
from ..job import undo_job_for
from ..targets import database_flag
from . import control


class Requested(NamedTuple):
    undo_job: str  # the job whose run puts the work back
    selected: int  # units (groups, links...) to put back; 0: nothing to do


def request(job_name: str, groups: Sequence[str] = (), *,
            using: str = DEFAULT_DB_ALIAS) -> Requested:
    """Check that `job_name` can be undone now and record what its undo's next run puts back.

    Refused, changing nothing: a job without an undo (InvalidInput); a run of the job or of its
    undo that is not over (AlreadyActive: an undo racing the job would leave either half-done);
    a schema that does not allow it (Irreversible, saying what to do first). The selection
    replaces any earlier one that no run has put back yet."""
    undo = undo_job_for(job_name)
    for name in (job_name, undo.name):
        run = control.active_run(name, using=using)
        if run is not None:
            raise AlreadyActive(
                f"{name} has run #{run.pk} ({run.status}); an undo must not race it: wait for it "
                f"to finish, or cancel it (python manage.py backfill cancel {name}"
                f"{database_flag(using)}), then undo"
            )
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        reason = undo.refusal(cursor)
        if reason:
            raise Irreversible(f"cannot undo {job_name}: {reason}")
        return Requested(undo.name, undo.select(cursor, list(groups)))
