"""The seam between schema migrations and data jobs.

`EnqueueJob` starts a job from the migration that made its work possible (e.g. the one that
added a column); `RequireJob` gates a later migration on it (`gates.pass_gate`: finished inline
on a small database, otherwise the migration stops with the job's progress and the commands to
watch or finish it).

A gate is decided once per migration: by `RequireJob` under plain `migrate`; by the deploy
executor under `migrate_online`, which asks the operation before the migration starts (so a
closed gate keeps the migration back whole) and applies it within `gates_passed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS

from .. import pg
from ..exceptions import Irreversible
from ..job import get_job
from ..runs import control, dispatch, gates
from ..targets import database_flag
from .base import DeclaredOperation


class JobOperation(DeclaredOperation):
    """An operation that names a data job and changes no schema or model state."""

    reduces_to_sql = False
    reversible = True
    required = ("job_name",)

    def __init__(self, job_name: str, **options):
        self.job_name = job_name
        for name, default in self.optional.items():
            setattr(self, name, options.pop(name, default))
        if options:
            raise TypeError(f"{type(self).__name__} got unknown option(s): {', '.join(options)}")

    def state_forwards(self, app_label, state):
        pass

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


class EnqueueJob(JobOperation):
    """`workers`: the lanes the run gets; None (the default) takes the job's own (`Job.lanes`)."""

    optional = {"batch_size": None, "workers": None}

    @property
    def lanes(self) -> int:
        return self.workers if self.workers is not None else get_job(self.job_name).lanes

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        dispatch.enqueue(self.job_name, actor="migrate", message="enqueued by migration",
                         batch_size=self.batch_size, workers=self.lanes,
                         using=schema_editor.connection.alias)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        """Refused while the job has a run that is not over: taking its migration back would
        pull what it works on from under it. A finished run is left as it is: applying the
        migration again starts the job anew if its verification finds work (dispatch.enqueue)."""
        if schema_editor.collect_sql:
            return
        run = control.active_run(self.job_name, using=schema_editor.connection.alias)
        if run is not None:
            raise Irreversible(
                f"migrating {app_label} back refused: data job {self.job_name} has run #{run.pk} "
                f"({run.status}), which works on what this migration made. Cancel it first "
                f"(python manage.py backfill cancel {self.job_name}"
                f"{database_flag(schema_editor.connection.alias)}), or let it finish, then "
                "migrate back again."
            )

    def describe(self):
        return f"Enqueue data job {self.job_name}"


# The jobs whose gates the caller has passed for the migration it is applying now.
_PASSED: ContextVar[frozenset[str]] = ContextVar("migrations_worker_gates_passed",
                                                  default=frozenset())


@contextmanager
def gates_passed(jobs: Iterable[str]) -> Iterator[None]:
    """Within it, a `RequireJob` on one of `jobs` lets its migration through without deciding
    the gate again: the caller decided it (`RequireJob.pass_gate`) just before."""
    token = _PASSED.set(_PASSED.get() | frozenset(jobs))
    try:
        yield
    finally:
        _PASSED.reset(token)


class RequireJob(JobOperation):
    optional = {"inline_limit": None}

    def limit(self) -> int:
        """The rows this gate finishes inline (None: the site's MW_GATE_INLINE_LIMIT)."""
        return gates.default_inline_limit() if self.inline_limit is None else self.inline_limit

    def pass_gate(self, needed_by: str, *, using: str = DEFAULT_DB_ALIAS) -> None:
        """Decide the gate on the database `using` and act on it (`gates.pass_gate`): return
        once the job is finished, finishing a small remainder inline; raise JobNotFinished if
        it is not."""
        gates.pass_gate(self.job_name, self.limit(), needed_by=needed_by, using=using)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        # Finishing the job inline commits batch by batch.
        using = schema_editor.connection.alias
        pg.require_no_transaction(f"RequireJob({self.job_name!r})", using=using)
        if self.job_name not in _PASSED.get():
            self.pass_gate(needed_by=app_label, using=using)

    def describe(self):
        return f"Require data job {self.job_name} to be finished"
