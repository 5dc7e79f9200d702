"""The job API: a data job is a small class that knows its table and its business rule.

The engine does the iteration, the bookkeeping, the retries, the throttling and the operator's
controls; a job only says what one batch does and how to tell when it is done, in the spirit of
Shopify's maintenance_tasks (`collection` / `process` / `count`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from psycopg import sql

from .exceptions import UnknownJob


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


def job_names() -> list[str]:
    return sorted(_registry)


def job_classes() -> list[type[Job]]:
    return [_registry[name] for name in job_names()]
