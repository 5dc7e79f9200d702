"""The gate between a migration and the data job it needs: one decision, read or acted on.

`decide` reads what a gate would do without changing anything (`migrate_online --plan` and
`--check` show it); `pass_gate` acts on it (`RequireJob` in `migrate` and `migrate_online`):
an open gate lets the migration through, a small remainder is finished inline (so `migrate` on
an empty or small database runs to the end in one go), anything else stops the migration with
the job's progress and the commands to watch or finish it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from .. import conf
from ..exceptions import JobNotFinished
from ..job import get_job
from ..models import JobRun, RunStatus
from ..targets import database_flag
from . import control, drive
from .progress import one_line, progress_of

# Run states in which the job waits for an operator, not for time.
HELD_BY_OPERATOR = (RunStatus.PAUSED, RunStatus.PAUSING, RunStatus.CANCELLING, RunStatus.FAILED)


def default_inline_limit() -> int:
    """Rows a gate may finish inline; MW_GATE_INLINE_LIMIT overrides it for every gate."""
    return int(conf.get("GATE_INLINE_LIMIT"))


class GateState(enum.StrEnum):
    OPEN = "open"  # the job has finished
    INLINE = "inline"  # a small remainder: finished inline when the gate is reached
    CLOSED = "closed"  # the job is running (or to be started): wait for it
    HELD = "held"  # paused, being cancelled, or failed: an operator must act
    UNKNOWN = "unknown"  # the job's tables come with migrations not applied yet


@dataclass(frozen=True)
class Gate:
    job: str
    state: GateState
    run: JobRun | None = None
    remaining: int | None = None
    database: str = DEFAULT_DB_ALIAS

    @property
    def on(self) -> str:
        """What the commands the refusal suggests need to reach the gate's database."""
        return database_flag(self.database)

    def describe(self) -> str:
        if self.state == GateState.UNKNOWN:
            return f"{self.job}: decided when reached (its tables are created earlier in the plan)"
        if self.state == GateState.OPEN:
            return f"{self.job}: finished"
        if self.state == GateState.INLINE:
            return f"{self.job}: {self.remaining:,} row(s) left, finished inline when applied"
        if self.run is None:
            return f"{self.job}: no run yet, {self.remaining:,} row(s) to do"
        return one_line(progress_of(self.run))

    def refusal(self, needed_by: str = "") -> JobNotFinished:
        """Why the migration cannot go on, with the commands that get it going."""
        where = f" (needed by {needed_by})" if needed_by else ""
        held = ""
        if self.state == GateState.HELD and self.run is not None:
            held = f" Cannot continue: {drive.OPERATOR_FIX[self.run.status](self.job, self.on)}."
        return JobNotFinished(
            self.job,
            f"data job {self.job}{where} is not finished: {self.describe()}.{held}"
            f" Watch it: python manage.py backfill status {self.job} --watch{self.on}."
            f" Finish it in the foreground: python manage.py backfill run {self.job}{self.on}."
            " Then run the migration again.",
        )


def engine_tables_exist(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    return JobRun._meta.db_table in connections[using].introspection.table_names()


def decide(job_name: str, inline_limit: int, *, ahead: bool = False,
           using: str = DEFAULT_DB_ALIAS) -> Gate:
    """What the gate on `job_name` would do now. `ahead`: the gate lies further down a plan, so
    its job's tables (or the engine's) may not exist yet."""
    if ahead and not engine_tables_exist(using=using):
        return Gate(job_name, GateState.UNKNOWN, database=using)
    latest = control.latest_run(job_name, using=using)
    finished = latest is not None and latest.status == RunStatus.FINISHED
    if finished and not control.undone_since(latest, using=using):
        return Gate(job_name, GateState.OPEN, latest, 0, database=using)
    try:
        with connections[using].cursor() as cursor:
            remaining = get_job(job_name).count_remaining(cursor)
    except DatabaseError:
        if not ahead:
            raise
        return Gate(job_name, GateState.UNKNOWN, database=using)
    if finished and not remaining:  # undone since, but what the gate needs still holds
        return Gate(job_name, GateState.OPEN, latest, 0, database=using)
    run = control.active_run(job_name, using=using)
    if run is not None and run.status in HELD_BY_OPERATOR:
        return Gate(job_name, GateState.HELD, run, remaining, database=using)
    if remaining <= inline_limit:
        return Gate(job_name, GateState.INLINE, run, remaining, database=using)
    return Gate(job_name, GateState.CLOSED, run or latest, remaining, database=using)


def pass_gate(job_name: str, inline_limit: int, *, needed_by: str = "",
              using: str = DEFAULT_DB_ALIAS) -> None:
    """Return once the job is finished (finishing a small remainder here); raise
    JobNotFinished, naming the job, its progress and the way out, if it is not."""
    gate = decide(job_name, inline_limit, using=using)
    if gate.state == GateState.OPEN:
        return
    if gate.state == GateState.INLINE:
        run = drive.run_inline(job_name, actor="migrate", worker_name="migrate",
                               message="finishing inline", using=using)
        if run.status == RunStatus.FINISHED:
            return
        gate = decide(job_name, inline_limit, using=using)
    raise gate.refusal(needed_by)
