"""Claiming a run's next batch: the one way a batch is handed to a worker, in one statement.

`CLAIM` checks the run's status and epoch under the run's row lock, then takes, lowest keys
first, a batch to do again (a retry that is due, or a batch whose worker's lease ran out and
that no worker holds: `FOR UPDATE SKIP LOCKED`), or else cuts the next fresh batch off the
keyset cursor (`batching` explains the cut); the cursor moves past it, the batch row is
written, the succeeded batches are folded into the run's totals (`totals`) and the worker's
batch sizing and heartbeat are recorded. A batch whose worker was lost on its last allowed
attempt is not claimed but returned `exhausted`, for the worker to give up on. The statement
never changes the run's status: it claims only while the run is running.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from ..job import Job
from ..models import JobRun
from . import prepared, progress, throttle
from .totals import FOLDED, RUN_TOTALS

# {key} and {table}: the job's. `again` is the batch to
# do again, `retried` it claimed (unless it ran out of attempts), `next` the fresh range when
# there is nothing to do again, `batch` its row, `moved` the run past it.
CLAIM = """
WITH run AS (
    SELECT r.id, r.status, r.dispatch_epoch, coalesce(r.cursor, r.min_key - 1) AS cursor,
           r.max_key, coalesce(%(size)s, r.batch_size) AS batch_size, r.rows_done,
           r.estimated_total
    FROM migrations_worker_jobrun r WHERE r.id = %(run)s FOR UPDATE
),
go AS (
    SELECT run.* FROM run
    WHERE run.status = 'running' AND run.dispatch_epoch = coalesce(%(epoch)s, run.dispatch_epoch)
),
again AS (
    SELECT b.id, b.status, b.start_key, b.end_key, b.attempts, b.batch_size
    FROM migrations_worker_jobbatch b
    WHERE b.run_id = (SELECT go.id FROM go)
      AND ((b.status = 'pending' AND (b.retry_after IS NULL OR b.retry_after <= now()))
           OR (b.status = 'running' AND b.lease_until < now()))
    ORDER BY b.start_key LIMIT 1 FOR UPDATE SKIP LOCKED
),
retried AS (
    UPDATE migrations_worker_jobbatch b SET
        status = 'running', attempts = b.attempts + 1, worker = %(worker)s, started_at = now(),
        lease_until = now() + make_interval(secs => %(lease)s)
    FROM again
    WHERE b.id = again.id
      AND NOT (again.status = 'running' AND again.attempts >= %(max_attempts)s)
    RETURNING b.attempts
),
next AS (
    SELECT go.id, go.cursor AS start_key, go.max_key, go.batch_size,
           (SELECT max(k) FROM (SELECT {key} AS k FROM {table}
                                WHERE {key} > go.cursor AND {key} <= go.max_key
                                ORDER BY {key} LIMIT go.batch_size) AS keys) AS end_key
    FROM go
    WHERE go.cursor < go.max_key AND NOT EXISTS (SELECT 1 FROM again)
),
batch AS (
    INSERT INTO migrations_worker_jobbatch
        (run_id, start_key, end_key, status, attempts, batch_size, rows_affected, worker, error,
         started_at, lease_until, created_at, folded)
    SELECT id, start_key, end_key, 'running', 1, batch_size, 0, %(worker)s, '',
           now(), now() + make_interval(secs => %(lease)s), now(), true
    FROM next WHERE end_key IS NOT NULL
    RETURNING id, start_key, end_key, batch_size
),
{folded},
moved AS (
    UPDATE migrations_worker_jobrun r SET
        cursor = coalesce(next.end_key, next.max_key),
        batch_size = next.batch_size,
        avg_seconds_per_row = coalesce(%(avg)s, r.avg_seconds_per_row),
        heartbeat_at = now(), worker = %(worker)s, updated_at = now(),
        {totals}
    FROM next WHERE r.id = next.id
    RETURNING r.batch_size, r.avg_seconds_per_row, r.rows_done
)
SELECT moved.batch_size, moved.avg_seconds_per_row, run.rows_done, moved.rows_done,
       run.estimated_total,
       coalesce(batch.id, again.id), coalesce(batch.start_key, again.start_key),
       coalesce(batch.end_key, again.end_key), coalesce(retried.attempts, again.attempts, 1),
       coalesce(batch.batch_size, again.batch_size), again.id IS NOT NULL AND retried.attempts IS NULL
FROM run LEFT JOIN moved ON true LEFT JOIN batch ON true LEFT JOIN again ON true
     LEFT JOIN retried ON true
"""


@dataclass(frozen=True)
class Claim:
    batch_id: int
    start: int
    end: int
    attempt: int
    size: int
    # Not claimed: the batch's worker was lost on its last allowed attempt (it is given up).
    exhausted: bool = False


class Claimer:
    """One worker's claims on one run, and the batch sizing it carries from claim to claim."""

    def __init__(self, run_id: int, job: Job, tuning: throttle.Tuning, *, epoch: int | None,
                 worker: str, using: str):
        self.run_id = run_id
        self.using = using
        self.epoch = epoch
        self.worker = worker
        self.tuning = tuning
        self.sql = sql.SQL(CLAIM).format(
            key=sql.Identifier(job.key), table=sql.Identifier(job.table),
            folded=FOLDED.format(when=sql.SQL("EXISTS (SELECT 1 FROM next)")),
            totals=RUN_TOTALS)
        # Batch sizing: the run's figures as this worker last saw them, and its last batch's
        # (seconds, keys), which the next fresh claim turns into the run's new average and size.
        self._run_sizing: tuple[int, float | None] | None = None
        self._observed: tuple[float, int] | None = None

    def observed(self, seconds: float, keys: int) -> None:
        """This worker's last batch took `seconds` over `keys` keys."""
        self._observed = (seconds, keys)

    def _sizing(self) -> tuple[int | None, float | None]:
        """The run's next batch size and average seconds per key, from this worker's last
        batch (None: nothing new to say). With several workers each folds its own batches into
        the figures it last read: the average then lags a little, it never breaks."""
        if self._observed is None or self._run_sizing is None:
            return None, None
        seconds, keys = self._observed
        size, average = self._run_sizing
        average = throttle.moving_average(average, seconds / max(keys, 1), self.tuning)
        return throttle.next_batch_size(size, average, self.tuning), average

    def next(self) -> Claim | None:
        """The next batch (see CLAIM); None when the run is not running under this worker's
        epoch, or has no batch to hand out now (the worker then looks at why)."""
        size, average = self._sizing()
        with prepared.cursor(self.using) as cursor:
            cursor.execute(self.sql, {
                "run": self.run_id, "epoch": self.epoch, "size": size, "avg": average,
                "worker": self.worker, "lease": self.tuning.lease_seconds,
                "max_attempts": self.tuning.max_attempts,
            })
            row = cursor.fetchone()
        if row is None:
            raise JobRun.DoesNotExist(f"run #{self.run_id} is gone")
        (run_size, run_average, rows_before, rows_after, estimated_total,
         batch_id, start, end, attempt, batch_size, exhausted) = row
        if run_size is not None:  # the run moved on: this worker's sizing went in
            self._run_sizing = (run_size, run_average)
            self._observed = None
            progress.passed(self.run_id, rows_before, rows_after, estimated_total,
                            using=self.using)
        if batch_id is None:
            return None
        return Claim(batch_id, start, end, attempt, batch_size, exhausted)
