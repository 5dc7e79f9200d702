"""The seam between schema migrations and data jobs.

`EnqueueJob` starts a job from the migration that made its work possible (e.g. the one that
added a column); `RequireJob` gates a later migration on it (`gates.pass_gate`: finished inline
on a small database, otherwise the migration stops with the job's progress and the commands to
watch or finish it).
"""

from __future__ import annotations

from .. import pg
from ..exceptions import Irreversible
from ..runs import control, dispatch, gates
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
    optional = {"batch_size": None, "workers": 1}

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        dispatch.enqueue(self.job_name, actor="migrate", message="enqueued by migration",
                         batch_size=self.batch_size, workers=self.workers)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        """Refused while the job has a run that is not over: taking its migration back would
        pull what it works on from under it. A finished run is left as it is: applying the
        migration again starts the job anew if its verification finds work (dispatch.enqueue)."""
        if schema_editor.collect_sql:
            return
        run = control.active_run(self.job_name)
        if run is not None:
            raise Irreversible(
                f"migrating {app_label} back refused: data job {self.job_name} has run #{run.pk} "
                f"({run.status}), which works on what this migration made. Cancel it first "
                f"(python manage.py backfill cancel {self.job_name}), or let it finish, then "
                "migrate back again."
            )

    def describe(self):
        return f"Enqueue data job {self.job_name}"


class RequireJob(JobOperation):
    optional = {"inline_limit": None}

    def limit(self) -> int:
        """The rows this gate finishes inline (None: the site's MW_GATE_INLINE_LIMIT)."""
        return gates.default_inline_limit() if self.inline_limit is None else self.inline_limit

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        # Finishing the job inline commits batch by batch.
        pg.require_no_transaction(f"RequireJob({self.job_name!r})")
        gates.pass_gate(self.job_name, self.limit(), needed_by=app_label)

    def describe(self):
        return f"Require data job {self.job_name} to be finished"
