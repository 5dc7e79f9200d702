"""Working a run: claim a batch, do it, commit its effect with its progress, repeat.

The same loop serves a Celery task (a bounded slice, then it re-enqueues itself) and the inline
`backfill run` command. Correctness never depends on the broker:

- a batch's data change and its progress rows commit in one transaction;
- a claimed batch is row-locked while it is processed, so other workers skip it
  (`FOR UPDATE SKIP LOCKED`); if its worker dies, PostgreSQL drops the lock and the batch is
  reclaimed once its lease runs out;
- processing re-checks the claim's attempt number (a fence), so a worker that lost its claim
  does nothing.

Bookkeeping is kept to a few statements per batch: the next batch is claimed with one
statement (`CLAIM`: the run's status and epoch checked, the cursor moved, the batch row
written, the worker's batch sizing and heartbeat recorded), and a batch's transaction writes
only its own row besides the job's change. The run's totals (rows, batches, the job's
counters) are folded from the batch rows by the next claim (`FOLD`): the batch's `folded` flag
flips in the statement that adds it to the run, so each batch counts exactly once however many
workers fold, and the run row is never locked by a batch transaction. Everything unusual (a
batch to do again, an operator's request, the end of the keys) takes the slower ORM path.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone
from psycopg import sql
from psycopg.types.json import Jsonb

from .. import pg
from ..job import BatchResult, Job, get_job
from ..models import BatchStatus, JobBatch, JobRun, RunStatus
from . import batching, progress, quarantine, throttle
from .states import record, transition

log = logging.getLogger("migrations_worker.runner")

# The succeeded batches of run %(run)s whose figures are not in the run's totals yet, marked as
# counted; the statement this is part of adds them to the run (RUN_TOTALS) under the same
# condition ({when}), so both happen or neither.
FOLDED = sql.SQL("""
folded AS (
    UPDATE migrations_worker_jobbatch b SET folded = true
    WHERE b.run_id = %(run)s AND NOT b.folded AND b.status = 'succeeded' AND {when}
    RETURNING b.rows_affected, b.counts
)
""")
RUN_TOTALS = sql.SQL("""
rows_done = r.rows_done + (SELECT coalesce(sum(rows_affected), 0) FROM folded),
batches_done = r.batches_done + (SELECT count(*) FROM folded),
report = (
    SELECT coalesce(jsonb_object_agg(key, total), jsonb_build_object())
    FROM (SELECT key, sum(value::numeric) AS total
          FROM (SELECT key, value FROM jsonb_each_text(r.report)
                UNION ALL
                SELECT key, value FROM folded,
                       jsonb_each_text(coalesce(folded.counts, jsonb_build_object()))
               ) AS every
          GROUP BY key) AS summed
)
""")
FOLD = sql.SQL("""
WITH {folded}
UPDATE migrations_worker_jobrun r SET {totals}, updated_at = now()
WHERE r.id = %(run)s AND EXISTS (SELECT 1 FROM folded)
RETURNING r.rows_done - (SELECT coalesce(sum(rows_affected), 0) FROM folded)::bigint, r.rows_done,
          r.estimated_total
""").format(folded=FOLDED.format(when=sql.SQL("true")), totals=RUN_TOTALS)

# The next fresh batch of a running run, in one statement: nothing happens (and the slower ORM
# path decides) unless the run is running under this worker's epoch, no batch waits to be
# done again (due for a retry, or its worker's lease ran out) and keys are left. Then the
# cursor moves past the batch, the batch row is written (claimed: running, attempt 1, leased),
# the succeeded batches are folded into the run's totals, and the worker's batch sizing and
# heartbeat are recorded. {key} and {table}: the job's.
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
      AND run.cursor < run.max_key
      AND NOT EXISTS (
          SELECT 1 FROM migrations_worker_jobbatch b
          WHERE b.run_id = run.id
            AND ((b.status = 'pending' AND (b.retry_after IS NULL OR b.retry_after <= now()))
                 OR (b.status = 'running' AND b.lease_until < now())))
),
next AS (
    SELECT go.id, go.cursor AS start_key, go.max_key, go.batch_size,
           (SELECT max(k) FROM (SELECT {key} AS k FROM {table}
                                WHERE {key} > go.cursor AND {key} <= go.max_key
                                ORDER BY {key} LIMIT go.batch_size) AS keys) AS end_key
    FROM go
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
SELECT run.status, run.dispatch_epoch, moved.batch_size, moved.avg_seconds_per_row,
       batch.id, batch.start_key, batch.end_key, batch.batch_size,
       run.rows_done, moved.rows_done, run.estimated_total
FROM run LEFT JOIN moved ON true LEFT JOIN batch ON true
"""

# A batch's transaction: the claim re-checked and row-locked for its duration (a worker that
# lost its claim finds nothing: the batch was claimed again, or cut in two), then, with the
# job's change, its outcome.
FENCE = """
SELECT id FROM migrations_worker_jobbatch
WHERE id = %s AND status = 'running' AND attempts = %s AND end_key = %s FOR UPDATE
"""
SUCCEEDED = """
UPDATE migrations_worker_jobbatch
SET status = 'succeeded', rows_affected = %s, counts = %s, duration_ms = %s,
    finished_at = clock_timestamp(), lease_until = NULL, retry_after = NULL, folded = false
WHERE id = %s
"""

CONTINUE, HOLD, WAIT, STOPPED, DONE, FENCED = (
    "continue",
    "hold",
    "wait",
    "stopped",
    "done",
    "fenced",
)


@dataclass(frozen=True)
class Outcome:
    kind: str
    delay: float = 0.0
    status: str = ""


@dataclass(frozen=True)
class Claim:
    batch_id: int
    start: int
    end: int
    attempt: int
    size: int


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def tuning_for(job: Job, run: JobRun) -> throttle.Tuning:
    return throttle.Tuning.resolve(throttle.site_defaults(), job.defaults, run.options or {})


class RunWorker:
    """Works one run from one process; any number may work the same run at once."""

    def __init__(self, run_id: int, *, epoch: int | None = None, name: str | None = None):
        self.run_id = run_id
        self.epoch = epoch
        self.name = name or worker_name()
        run = JobRun.objects.get(pk=run_id)
        self.job = get_job(run.job_name)
        self.tuning = tuning_for(self.job, run)
        self._last_health_check = 0.0
        self._claim_sql = sql.SQL(CLAIM).format(
            key=sql.Identifier(self.job.key), table=sql.Identifier(self.job.table),
            folded=FOLDED.format(when=sql.SQL("EXISTS (SELECT 1 FROM next)")),
            totals=RUN_TOTALS)
        # Batch sizing: the run's figures as this worker last saw them, and its last batch's
        # (seconds, keys), which the next claim turns into the run's new average and size.
        self._run_sizing: tuple[int, float | None] | None = None
        self._observed: tuple[float, int] | None = None

    # -- the loop -------------------------------------------------------------------------

    def work(
        self, max_seconds: float | None = None, on_batch: Callable[[JobRun], None] | None = None
    ) -> Outcome:
        started = time.monotonic()
        while True:
            outcome = self._health()
            if outcome is not None:
                return outcome
            claim = self._claim_next()
            if claim is None:  # not the usual case: let the run's state and the ORM decide
                outcome = self._check_run()
                if outcome is not None:
                    return outcome
                claim = self._claim()
            if claim is None:
                outcome = self._finalize()
                if outcome.kind in (CONTINUE, STOPPED):
                    continue  # STOPPED: an operator stepped in; the check above settles it
                return outcome
            self._process(claim)
            if on_batch is not None:
                on_batch(JobRun.objects.get(pk=self.run_id))
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                return Outcome(CONTINUE)
            if self.tuning.pause_seconds:
                time.sleep(self.tuning.pause_seconds)

    def _check_run(self) -> Outcome | None:
        """Honour operator requests between batches, and fence messages of an older dispatch."""
        run = JobRun.objects.get(pk=self.run_id)
        if self.epoch is not None and run.dispatch_epoch != self.epoch:
            return Outcome(FENCED, status=run.status)
        if run.status == RunStatus.PAUSING:
            self._settle(RunStatus.PAUSING, RunStatus.PAUSED, "paused between batches")
            return Outcome(STOPPED, status=RunStatus.PAUSED)
        if run.status == RunStatus.CANCELLING:
            self._settle(RunStatus.CANCELLING, RunStatus.CANCELLED, "cancelled between batches")
            return Outcome(STOPPED, status=RunStatus.CANCELLED)
        if run.status != RunStatus.RUNNING:
            return Outcome(STOPPED, status=run.status)
        return None

    def _health(self) -> Outcome | None:
        """At most once a second: a busy database puts the run on hold (see throttle)."""
        if time.monotonic() - self._last_health_check < 1.0:
            return None
        self._last_health_check = time.monotonic()
        hold = throttle.health_hold(self.job.tables_to_watch(), self.tuning)
        run = (JobRun.objects.only("status", "hold_reason", "hold_kind", "job_name")
               .get(pk=self.run_id))
        changed = (hold.kind, hold.reason) if hold else ("", "")
        if changed != (run.hold_kind, run.hold_reason) and run.status == RunStatus.RUNNING:
            self._set_hold(run, hold)
        if hold:
            return Outcome(HOLD, delay=self.tuning.hold_seconds, status=run.status)
        return None

    def _settle(self, expected: str, to: str, message: str) -> None:
        with transaction.atomic():
            fold(self.run_id)
            run = JobRun.objects.select_for_update().get(pk=self.run_id)
            if run.status == expected:
                run.status = to
                if to == RunStatus.CANCELLED:
                    run.finished_at = timezone.now()
                run.save(update_fields=["status", "finished_at", "updated_at"])
                record(run, expected, to, self.name, message)

    def _set_hold(self, run: JobRun, hold: throttle.Hold | None) -> None:
        """Store the hold (its kind and reason) on the run, and record it with its kind."""
        now = timezone.now()
        until = now + timedelta(seconds=self.tuning.hold_seconds) if hold else None
        kind, reason = (hold.kind, hold.reason) if hold else ("", "")
        JobRun.objects.filter(pk=run.pk).update(
            hold_reason=reason, hold_kind=kind, hold_until=until, heartbeat_at=now, updated_at=now
        )
        message = f"on hold: {reason}" if hold else "hold cleared"
        record(run, run.status, run.status, self.name, message, hold_kind=kind)

    # -- claiming -------------------------------------------------------------------------

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

    def _claim_next(self) -> Claim | None:
        """The usual claim: the next fresh batch, in one statement (see CLAIM); None when the
        run is not simply running on (the slower path then looks at why)."""
        size, average = self._sizing()
        with connection.cursor() as cursor:
            cursor.execute(self._claim_sql, {
                "run": self.run_id, "epoch": self.epoch, "size": size, "avg": average,
                "worker": self.name, "lease": self.tuning.lease_seconds,
            })
            row = cursor.fetchone()
        if row is None:
            raise JobRun.DoesNotExist(f"run #{self.run_id} is gone")
        (_status, _epoch, run_size, run_average, batch_id, start, end, batch_size,
         rows_before, rows_after, estimated_total) = row
        if run_size is not None:  # the run moved on: this worker's sizing went in
            self._run_sizing = (run_size, run_average)
            self._observed = None
            progress.passed(self.run_id, rows_before, rows_after, estimated_total)
        if batch_id is None:
            return None
        return Claim(batch_id, start, end, 1, batch_size)

    def _claim(self) -> Claim | None:
        """The slower claim: a batch to do again first (a retry that is due, or a batch whose
        worker vanished), else the next fresh one; None when no keys are left."""
        while True:
            with transaction.atomic():
                now = timezone.now()
                lease = now + timedelta(seconds=self.tuning.lease_seconds)
                batch = self._reclaimable(now)
                if batch is not None:
                    if (
                        batch.status == BatchStatus.RUNNING
                        and batch.attempts >= self.tuning.max_attempts
                    ):
                        self._give_up(batch, "its worker was lost on every attempt")
                        return None
                    batch.status = BatchStatus.RUNNING
                    batch.attempts += 1
                    batch.worker = self.name
                    batch.started_at = now
                    batch.lease_until = lease
                    batch.save(
                        update_fields=["status", "attempts", "worker", "started_at", "lease_until"]
                    )
                    return Claim(
                        batch.pk, batch.start_key, batch.end_key, batch.attempts, batch.batch_size
                    )
                run = JobRun.objects.select_for_update().get(pk=self.run_id)
                if run.status != RunStatus.RUNNING or run.max_key is None:
                    return None
                if run.cursor is not None and run.cursor >= run.max_key:
                    return None
                after = run.cursor if run.cursor is not None else run.min_key - 1
                with connection.cursor() as cursor:
                    end = batching.next_range_end(
                        cursor, self.job.table, self.job.key, after, run.max_key, run.batch_size
                    )
                if end is None:
                    run.cursor = run.max_key
                    run.save(update_fields=["cursor", "updated_at"])
                    continue
                batch = JobBatch.objects.create(
                    run=run,
                    start_key=after,
                    end_key=end,
                    status=BatchStatus.RUNNING,
                    attempts=1,
                    batch_size=run.batch_size,
                    worker=self.name,
                    started_at=now,
                    lease_until=lease,
                )
                run.cursor = end
                run.heartbeat_at = now
                run.save(update_fields=["cursor", "heartbeat_at", "updated_at"])
                return Claim(batch.pk, after, end, 1, batch.batch_size)

    def _reclaimable(self, now) -> JobBatch | None:
        """A pending batch due for (re)try, or one whose worker vanished, lowest keys first."""
        return (
            JobBatch.objects.select_for_update(skip_locked=True)
            .filter(run_id=self.run_id)
            .filter(
                Q(status=BatchStatus.PENDING, retry_after__isnull=True)
                | Q(status=BatchStatus.PENDING, retry_after__lte=now)
                | Q(status=BatchStatus.RUNNING, lease_until__lt=now)
            )
            .order_by("start_key")
            .first()
        )

    # -- processing -----------------------------------------------------------------------

    def _process(self, claim: Claim) -> None:
        t0 = time.monotonic()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                with pg.timeouts(cursor, lock_timeout_ms=self.tuning.lock_timeout_ms,
                                 statement_timeout_ms=self.tuning.statement_timeout_ms):
                    cursor.execute(FENCE, [claim.batch_id, claim.attempt, claim.end])
                    if cursor.fetchone() is None:
                        log.info(
                            "run=%s batch=%s fenced: claimed again elsewhere",
                            self.run_id,
                            claim.batch_id,
                        )
                        return
                    result = self.job.process_batch(cursor, claim.start, claim.end)
                if isinstance(result, int):
                    result = BatchResult(rows=result)
                seconds = time.monotonic() - t0
                cursor.execute(SUCCEEDED, [result.rows, Jsonb(result.counts), seconds * 1000,
                                           claim.batch_id])
            self._observed = (seconds, claim.size)
            log.info(
                "run=%s job=%s batch=(%s,%s] rows=%s duration_ms=%.0f batch_size=%s attempt=%s",
                self.run_id,
                self.job.name,
                claim.start,
                claim.end,
                result.rows,
                seconds * 1000,
                claim.size,
                claim.attempt,
            )
        except Exception as exc:
            waited = pg.transient(exc)
            pg.reset_if_broken()
            self._record_failure(claim, exc, time.monotonic() - t0, waited)

    def _record_failure(self, claim: Claim, exc: Exception, seconds: float,
                        waited: bool = False) -> None:
        """Put the batch back for another attempt, split it, or set its key aside.

        A `waited` failure (see `transient`) is not an attempt: an application transaction
        holding a row lock the batch needs, or a restart of the server, must put the batch off,
        not fail the run; the attempt number goes back to what it was, so a worker that lost
        its claim stays fenced (claims only ever move past it). Any other failure is the work
        being wrong for some row: a batch of several keys is cut in two at once (quarantine.py)
        until the failing key stands alone, and that key, after `max_attempts`, is quarantined
        while the run goes on. A batch with no key left that still fails fails the run."""
        error = f"{type(exc).__name__}: {exc}".strip()
        log.warning(
            "run=%s job=%s batch=(%s,%s] attempt=%s %s after %.0fms: %s",
            self.run_id,
            self.job.name,
            claim.start,
            claim.end,
            claim.attempt,
            "put off (not counted as an attempt)" if waited else "failed",
            seconds * 1000,
            error,
        )
        with transaction.atomic():
            batch = (
                JobBatch.objects.select_for_update()
                .filter(pk=claim.batch_id, status=BatchStatus.RUNNING, attempts=claim.attempt,
                        end_key=claim.end)
                .first()
            )
            if batch is None:
                return
            batch.error = error
            batch.duration_ms = seconds * 1000
            batch.lease_until = None
            if waited:
                batch.status = BatchStatus.PENDING
                batch.attempts -= 1
                batch.retry_after = timezone.now() + timedelta(
                    seconds=self.tuning.retry_backoff_seconds)
                batch.save(update_fields=["status", "attempts", "error", "duration_ms",
                                          "lease_until", "retry_after"])
                return
            count, middle = quarantine.keys_in(self.job, batch.start_key, batch.end_key)
            if count > 1:
                second = quarantine.split(batch, middle, count)
                log.info("run=%s job=%s batch=(%s,%s] split at %s to find the failing key(s)",
                         self.run_id, self.job.name, claim.start, claim.end, second.start_key)
                return
            if batch.attempts >= self.tuning.max_attempts:
                if count == 1:
                    self._quarantine(batch, middle, error, pg.sqlstate(exc))
                else:  # it fails with no row at all: the job, not the data
                    self._give_up(batch, f"{error} (with no row in its range: no bad row to set "
                                         f"aside, the job itself fails)")
                return
            batch.status = BatchStatus.PENDING
            backoff = self.tuning.retry_backoff_seconds * 2 ** (batch.attempts - 1)
            batch.retry_after = timezone.now() + timedelta(seconds=backoff)
            batch.save(
                update_fields=["status", "error", "duration_ms", "lease_until", "retry_after"]
            )

    def _quarantine(self, batch: JobBatch, key: int, error: str, sqlstate: str) -> None:
        """Set the one key aside and go on; pause the run when that is one key too many."""
        if quarantine.set_aside(batch, key, error, sqlstate) is None:
            return  # accepted earlier in this run
        run = JobRun.objects.get(pk=self.run_id)
        record(run, run.status, run.status, self.name,
               f"key {key} quarantined after {batch.attempts} attempt(s): {error}")
        reason = quarantine.over_budget(run, self.tuning)
        if reason and run.status == RunStatus.RUNNING:
            transition(self.run_id, RunStatus.PAUSING, actor=self.name, message=reason)

    def _give_up(self, batch: JobBatch, error: str) -> None:
        """A batch out of attempts fails, and with it the run, with the error for the operator."""
        batch.status = BatchStatus.FAILED
        batch.error = error
        batch.lease_until = None
        batch.finished_at = timezone.now()
        batch.save(update_fields=["status", "error", "lease_until", "finished_at"])
        message = (
            f"batch ({batch.start_key}, {batch.end_key}] failed after {batch.attempts} "
            f"attempt(s): {error}"
        )
        fold(self.run_id)
        run = JobRun.objects.get(pk=self.run_id)
        if run.status in (RunStatus.RUNNING, RunStatus.PAUSING):
            transition(self.run_id, RunStatus.FAILED, actor=self.name, message=message)

    # -- finishing ------------------------------------------------------------------------

    def _finalize(self) -> Outcome:
        """No batch left to claim: wait for others, catch up once, then verify."""
        with transaction.atomic():
            fold(self.run_id)
            run = JobRun.objects.select_for_update().get(pk=self.run_id)
            if run.status != RunStatus.RUNNING:
                return Outcome(STOPPED, status=run.status)
            open_batches = run.batches.filter(status__in=[BatchStatus.PENDING, BatchStatus.RUNNING])
            if open_batches.exists():
                due = open_batches.aggregate(retry=Min("retry_after"), lease=Min("lease_until"))
                soonest = min(
                    d
                    for d in (due["retry"], due["lease"], timezone.now() + timedelta(seconds=1))
                    if d
                )
                delay = max(0.05, (soonest - timezone.now()).total_seconds())
                return Outcome(WAIT, delay=min(delay, 1.0), status=run.status)
            # A batch that committed between the fold above and that check is counted now: no
            # batch is open any more, so this fold sees every one (the run's totals are final).
            fold(self.run_id)
            run.refresh_from_db()
            with connection.cursor() as cursor:
                if not run.caught_up:
                    run.caught_up = True
                    low, high = batching.key_bounds(cursor, self.job.table, self.job.key)
                    if high is not None and (run.max_key is None or high > run.max_key):
                        if run.min_key is None:
                            run.min_key = low
                        message = (
                            f"catch-up pass: keys {run.max_key} to {high} arrived since enqueue"
                        )
                        run.max_key = high
                        run.save(update_fields=["caught_up", "min_key", "max_key", "updated_at"])
                        record(run, run.status, run.status, self.name, message)
                        return Outcome(CONTINUE)
                    run.save(update_fields=["caught_up", "updated_at"])
            status = conclude(run, self.job, self.name)
        return Outcome(DONE, status=status)


def conclude(run: JobRun, job: Job, actor: str) -> str:
    """The last word on a run whose walk is over, returning the status it ends in: failed while
    a quarantined key is open; else the job's verification decides, where rows left in keys an
    operator accepted do not count against it. A run that failed already (an operator accepted
    its keys since) stays failed with the new reason, or finishes."""
    still_open = quarantine.open_keys(run.pk)
    if still_open.exists():
        return _settle_as(run, RunStatus.FAILED, actor,
                          quarantine.blocking_message(run.job_name, still_open))
    with connection.cursor() as cursor:
        remaining = job.count_remaining(cursor)
    accepted = quarantine.accepted_count(run.pk)
    if remaining > accepted:
        return _settle_as(run, RunStatus.FAILED, actor,
                          f"verification failed: {remaining} row(s) still need {run.job_name}; "
                          f"`backfill retry {run.job_name}` walks the keys they are in again")
    left = (f"{remaining} row(s) left, no more than the {accepted} accepted quarantined key(s)"
            if remaining else "0 rows left")
    return _settle_as(run, RunStatus.FINISHED, actor,
                      f"verified: {left}; {run.rows_done} row(s) in {run.batches_done} batch(es)")


def _settle_as(run: JobRun, status: str, actor: str, message: str) -> str:
    current = JobRun.objects.get(pk=run.pk).status
    if current == status == RunStatus.FAILED:
        JobRun.objects.filter(pk=run.pk).update(error=message, updated_at=timezone.now())
        record(run, current, status, actor, message)
    elif status == RunStatus.FINISHED:
        transition(run.pk, status, actor=actor, message=message, hold_reason="", hold_kind="",
                   hold_until=None)
    else:
        transition(run.pk, status, actor=actor, message=message)
    return status


def fold(run_id: int) -> None:
    """Add the succeeded batches not yet counted to their run's totals (see FOLD)."""
    with connection.cursor() as cursor:
        cursor.execute(FOLD, {"run": run_id})
        row = cursor.fetchone()
    if row is not None:
        progress.passed(run_id, *row)
