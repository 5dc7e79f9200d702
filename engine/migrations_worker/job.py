"""The job API: a data job is a small class that knows its table and its business rule.

The engine does the iteration, the bookkeeping, the retries, the throttling and the operator's
controls; a job only says what one batch does and how to tell when it is done, in the spirit of
Shopify's maintenance_tasks (`collection` / `process` / `count`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from psycopg import sql

from .exceptions import InvalidInput, UnknownJob


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: rows changed, plus job-specific counters summed into the run's report."""

    rows: int
    counts: dict[str, int] = field(default_factory=dict)


class Job:
    """Subclass, set `name`, `table` (and `key` if not `id`), implement `process_batch` and
    `count_remaining`, and decorate with `@register`.

    `process_batch` runs inside the transaction the engine opened for the batch, so its changes
    commit together with the batch's progress row or not at all. It must be idempotent: a batch
    whose worker died before commit is redone, and at-least-once delivery may redo it too.
    """

    name: ClassVar[str]
    table: ClassVar[str]
    key: ClassVar[str] = "id"
    description: ClassVar[str] = ""
    # Tables whose lock queues put the run on hold; defaults to the walked table.
    watched_tables: ClassVar[tuple[str, ...]] = ()
    # Tuning defaults, each overridable per run (see throttle.Tuning).
    defaults: ClassVar[dict[str, float | int]] = {}
    # Rows per second one worker did, measured by `python -m bench.scale` (say on what: the
    # size, the workers, the load): `migrate_online --plan`'s rate until the job has run on the
    # database it plans for. A row is what `count_remaining` counts. None: the site's
    # PLAN_ROWS_PER_SECOND.
    measured_rows_per_second: ClassVar[float | None] = None
    # What one row of the job's work writes, measured by `python -m bench.footprint`: bytes of
    # WAL, and bytes the database grows by before vacuum (the rows' new versions and their index
    # entries, archive rows). `migrate_online --plan` sizes the deploy's WAL and disk with them,
    # before anyone starts it. None: unknown, and the plan says so.
    measured_wal_bytes_per_row: ClassVar[float | None] = None
    measured_growth_bytes_per_row: ClassVar[float | None] = None
    # The worker lanes a migration's `EnqueueJob` starts the job on unless it says otherwise: a
    # job that is the deploy's longest takes more than one, so the deploy's workers are not left
    # idle once its shorter jobs are done (a lane is a Celery message; with fewer workers than
    # lanes the lanes take turns, which costs nothing).
    lanes: ClassVar[int] = 1
    # True: `process_batch` gets a cursor whose statements are prepared, planned once per
    # worker session instead of once per batch (runs/prepared.py). It binds parameters on the
    # server: one statement per `execute`, parameters only where a value goes (`= ANY(%s)` with
    # a list, not `IN %s` with a tuple; `set_config()`, not `SET ... %s`).
    prepare_statements: ClassVar[bool] = False

    def process_batch(self, cursor, start: int, end: int) -> BatchResult | int:
        """Do the work for keys in the half-open range (start, end]."""
        raise NotImplementedError

    def count_remaining(self, cursor) -> int:
        """The "done when" verification: how many rows still need the job. 0 means done."""
        raise NotImplementedError

    def remaining_key_range(self, cursor) -> tuple[int, int] | None:
        """The keys (low, high) of the rows `count_remaining` still counts, so a retry after a
        failed verification walks only those batches again; None: walk the whole range."""
        return None

    def estimate_total(self, cursor, min_key: int | None, max_key: int | None) -> int:
        """Rows the run will walk; used for percent and ETA only. Default: keys in range."""
        if min_key is None:
            return 0
        cursor.execute(
            sql.SQL("SELECT count(*) FROM {t} WHERE {k} BETWEEN %s AND %s").format(
                t=sql.Identifier(self.table), k=sql.Identifier(self.key)
            ),
            [min_key, max_key],
        )
        return cursor.fetchone()[0]

    @classmethod
    def tables_to_watch(cls) -> tuple[str, ...]:
        return cls.watched_tables or (cls.table,)


class UndoJob(Job):
    """A job that puts back what another job did (`undoes`: that job's name), from what that job
    kept of the rows it changed. `backfill undo NAME` finds it by that name, asks `refusal`
    whether it can run as the schema stands, lets `select` record what the operator asked to put
    back (where the job reads it, since a batch gets nothing but its key range), then runs it like
    any job: in batches, resumable, each batch idempotent.

    Once a run of the undo exists, the undone job's finished run no longer settles its gate by
    itself: its verification decides (`control.undone_since`).
    """

    undoes: ClassVar[str]
    # Report counters whose name ends so count rows changed since the undone job ran, which the
    # undo reported and left as they are (`mw_undo_rows_kept`).
    KEPT_SUFFIX: ClassVar[str] = "_kept"

    def refusal(self, cursor) -> str:
        """Why the undo cannot run as things are, and what to do first; "" when it can."""
        return ""

    def select(self, cursor, groups: Sequence[str]) -> int:
        """Record what the next run puts back: the `groups` named on the command line, or all of
        the undone job's work when none is named. Returns how many units that is (0: nothing to
        put back); raises InvalidInput for a group that does not exist."""
        if groups:
            raise InvalidInput(f"{self.undoes} has no groups to choose from: its undo puts back "
                               "all of its work; leave out --group")
        return self.count_remaining(cursor)

    def findings(self, cursor, since: datetime) -> list[str]:
        """What the runs since `since` left for an operator to look at (rows changed since the
        undone job and so left as they are, writes kept), one line each."""
        return []


_registry: dict[str, type[Job]] = {}


def register(job_class: type[Job]) -> type[Job]:
    existing = _registry.get(job_class.name)
    if existing is not None and existing is not job_class:
        raise ValueError(f"job name {job_class.name!r} is registered twice")
    _registry[job_class.name] = job_class
    return job_class


def get_job(name: str) -> Job:
    try:
        return _registry[name]()
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownJob(f"unknown job {name!r}; known jobs: {known}") from None


def undo_job_for(name: str) -> UndoJob:
    """The job that undoes `name`, or InvalidInput saying it has none."""
    get_job(name)
    for job_class in _registry.values():
        if issubclass(job_class, UndoJob) and job_class.undoes == name:
            return job_class()
    raise InvalidInput(f"{name} has no undo: nothing it keeps of the rows it changed can put "
                       "them back")


def job_names() -> list[str]:
    return sorted(_registry)


def job_classes() -> list[type[Job]]:
    return [_registry[name] for name in job_names()]
