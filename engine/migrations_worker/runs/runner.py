"""Working a run: claim a batch, do it, commit its effect with its progress, repeat.

The same loop serves a Celery task (a bounded slice, then it re-enqueues itself) and the inline
`backfill run` command. Correctness never depends on the broker:

- a batch's data change and its progress rows commit in one transaction;
- a claimed batch is row-locked while it is processed, so other workers skip it
  (`FOR UPDATE SKIP LOCKED`); if its worker dies, PostgreSQL drops the lock and the batch is
  reclaimed once its lease runs out;
- processing re-checks the claim's attempt number (a fence), so a worker that lost its claim
  does nothing.

Bookkeeping is kept to a few statements per batch: every batch is claimed with one statement
(`claim.CLAIM`: the run's status and epoch checked, a batch to do again or the next fresh one,
the run's totals folded, the worker's batch sizing and heartbeat recorded), and a batch's
transaction writes only its own row besides the job's change (`totals` explains the fold).
When nothing is claimed, the run's state says why: an operator's request is settled, a stale
dispatch stops, and at the end of the keys the run is caught up and verified (`verdict`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Min
from django.utils import timezone
from psycopg.types.json import Jsonb

from .. import pg
from ..job import BatchResult, Job, get_job
from ..logs import about
from ..models import BatchStatus, JobBatch, JobRun, RunStatus
from . import batching, prepared, quarantine, server_slots, throttle
from .claim import Claim, Claimer
from .states import enter, record, transition
from .totals import fold
from .verdict import conclude

log = logging.getLogger("migrations_worker.runner")

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

class Kind(StrEnum):
    """What a worker's slice ended with; the Celery task re-enqueues the first three."""

    CONTINUE = "continue"  # more to do: the slice's time is up, or the run was caught up
    HOLD = "hold"  # the database is busy (throttle): come back after the hold
    WAIT = "wait"  # nothing to claim now: batches of other workers are open, or not yet due
    STOPPED = "stopped"  # the run is not running (an operator stepped in, or it failed)
    DONE = "done"  # the walk is over and the run concluded
    FENCED = "fenced"  # the message is from an older dispatch
    GONE = "gone"  # the run was deleted


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    delay: float = 0.0
    status: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def tuning_for(job: Job, run: JobRun) -> throttle.Tuning:
    return throttle.Tuning.resolve(throttle.site_defaults(), job.defaults, run.options or {})


class RunWorker:
    """Works one run from one process; any number may work the same run at once."""

    def __init__(self, run_id: int, *, epoch: int | None = None, name: str | None = None,
                 using: str = DEFAULT_DB_ALIAS):
        self.run_id = run_id
        self.epoch = epoch
        self.name = name or worker_name()
        self.using = using
        self.runs = JobRun.objects.db_manager(using)
        run = self.runs.get(pk=run_id)
        self.job = get_job(run.job_name)
        self.tuning = tuning_for(self.job, run)
        self._last_health_check = 0.0
        self._claimer = Claimer(run_id, self.job, self.tuning, epoch=epoch, worker=self.name,
                                using=using)

    # -- the loop -------------------------------------------------------------------------

    def work(
        self, max_seconds: float | None = None, on_batch: Callable[[JobRun], None] | None = None
    ) -> Outcome:
        """Batches until the slice is over or the run needs something else; a run that left
        `running` gives its server's slot back (server_slots) for another database's run."""
        outcome = self._work(max_seconds, on_batch)
        if outcome.kind in (Kind.STOPPED, Kind.DONE):
            server_slots.release(self.using, self.run_id)
        return outcome

    def _work(self, max_seconds: float | None,
              on_batch: Callable[[JobRun], None] | None) -> Outcome:
        started = time.monotonic()
        while True:
            outcome = self._health()
            if outcome is not None:
                return outcome
            claim = self._claim_next()
            if claim is None:  # not the usual case: the run's state says why
                outcome = self._check_run()
                if outcome is not None:
                    return outcome
                outcome = self._finalize()
                if outcome.kind in (Kind.CONTINUE, Kind.STOPPED):
                    continue  # STOPPED: an operator stepped in; the check above settles it
                return outcome
            self._process(claim)
            if on_batch is not None:
                on_batch(self.runs.get(pk=self.run_id))
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                return Outcome(Kind.CONTINUE)
            if self.tuning.pause_seconds:
                time.sleep(self.tuning.pause_seconds)

    def _check_run(self) -> Outcome | None:
        """Honour operator requests between batches, and fence messages of an older dispatch."""
        run = self.runs.get(pk=self.run_id)
        if self.epoch is not None and run.dispatch_epoch != self.epoch:
            return Outcome(Kind.FENCED, status=run.status)
        if run.status == RunStatus.PAUSING:
            self._settle(RunStatus.PAUSING, RunStatus.PAUSED, "paused between batches")
            return Outcome(Kind.STOPPED, status=RunStatus.PAUSED)
        if run.status == RunStatus.CANCELLING:
            self._settle(RunStatus.CANCELLING, RunStatus.CANCELLED, "cancelled between batches")
            return Outcome(Kind.STOPPED, status=RunStatus.CANCELLED)
        if run.status != RunStatus.RUNNING:
            return Outcome(Kind.STOPPED, status=run.status)
        return None

    def _health(self) -> Outcome | None:
        """At most once a second: a busy database puts the run on hold (see throttle), and so
        does its server's limit, once the run is otherwise fit for a batch (server_slots)."""
        if time.monotonic() - self._last_health_check < 1.0:
            return None
        self._last_health_check = time.monotonic()
        hold = throttle.health_hold(self.job.tables_to_watch(), self.tuning, using=self.using)
        run = (self.runs.only("status", "hold_reason", "hold_kind", "job_name")
               .get(pk=self.run_id))
        if hold is None and run.status == RunStatus.RUNNING:
            hold = server_slots.take(self.using, self.run_id, self.name, self.tuning)
        changed = (hold.kind, hold.reason) if hold else ("", "")
        if changed != (run.hold_kind, run.hold_reason) and run.status == RunStatus.RUNNING:
            self._set_hold(run, hold)
        if hold:
            return Outcome(Kind.HOLD, delay=self.tuning.hold_seconds, status=run.status)
        return None

    def _settle(self, expected: str, to: str, message: str) -> None:
        with transaction.atomic(using=self.using):
            fold(self.run_id, using=self.using)
            run = self.runs.select_for_update().get(pk=self.run_id)
            if run.status == expected:
                enter(run, to, using=self.using, actor=self.name, message=message)

    def _set_hold(self, run: JobRun, hold: throttle.Hold | None) -> None:
        """Store the hold (its kind and reason) on the run, and record it with its kind."""
        now = timezone.now()
        until = now + timedelta(seconds=self.tuning.hold_seconds) if hold else None
        kind, reason = (hold.kind, hold.reason) if hold else ("", "")
        self.runs.filter(pk=run.pk).update(
            hold_reason=reason, hold_kind=kind, hold_until=until, heartbeat_at=now, updated_at=now
        )
        message = f"on hold: {reason}" if hold else "hold cleared"
        record(run, run.status, run.status, self.name, message, hold_kind=kind, using=self.using)

    # -- claiming -------------------------------------------------------------------------

    def _claim_next(self) -> Claim | None:
        """The next batch (claim.CLAIM); one whose worker was lost on every attempt is given
        up here, failing the run. None when nothing is claimed: the run's state says why."""
        claim = self._claimer.next()
        if claim is not None and claim.exhausted:
            self._give_up_lost(claim)
            return None
        return claim

    def _give_up_lost(self, claim: Claim) -> None:
        """Fail the batch the claim found out of attempts, unless something moved it since
        (its worker came back and holds it, or committed it)."""
        with transaction.atomic(using=self.using):
            batch = (
                JobBatch.objects.using(self.using).select_for_update(skip_locked=True)
                .filter(pk=claim.batch_id, status=BatchStatus.RUNNING, attempts=claim.attempt,
                        lease_until__lt=timezone.now())
                .first()
            )
            if batch is not None:
                self._give_up(batch, "its worker was lost on every attempt")

    # -- processing -----------------------------------------------------------------------

    def _about(self, claim: Claim, **more) -> dict:
        """A batch's log fields (`logs.about`)."""
        return about(run=self.run_id, job=self.job.name, target=self.using, batch=claim.batch_id,
                     start_key=claim.start, end_key=claim.end, attempt=claim.attempt, **more)

    def _process(self, claim: Claim) -> None:
        t0 = time.monotonic()
        try:
            with transaction.atomic(using=self.using), prepared.cursor(self.using) as cursor, \
                    self._job_cursor(cursor) as job_cursor:
                with pg.timeouts(cursor, lock_timeout_ms=self.tuning.lock_timeout_ms,
                                 statement_timeout_ms=self.tuning.statement_timeout_ms):
                    cursor.execute(FENCE, [claim.batch_id, claim.attempt, claim.end])
                    if cursor.fetchone() is None:
                        log.info(
                            "run=%s batch=%s fenced: claimed again elsewhere",
                            self.run_id,
                            claim.batch_id,
                            extra=self._about(claim),
                        )
                        return
                    result = self.job.process_batch(job_cursor, claim.start, claim.end)
                if isinstance(result, int):
                    result = BatchResult(rows=result)
                seconds = time.monotonic() - t0
                cursor.execute(SUCCEEDED, [result.rows, Jsonb(result.counts), seconds * 1000,
                                           claim.batch_id])
            self._claimer.observed(seconds, claim.size)
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
                extra=self._about(claim, rows=result.rows, duration_ms=round(seconds * 1000, 1),
                                  batch_size=claim.size),
            )
        except Exception as exc:
            waited = pg.transient(exc, using=self.using)
            pg.reset_if_broken(using=self.using)
            self._record_failure(claim, exc, time.monotonic() - t0, waited)

    def _job_cursor(self, own) -> AbstractContextManager:
        """The cursor the job's statements run on: the batch's own, prepared, for a job that
        opts in (`Job.prepare_statements`), else Django's, on the same session and transaction."""
        if self.job.prepare_statements:
            return nullcontext(own)
        return connections[self.using].cursor()

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
            extra=self._about(claim, duration_ms=round(seconds * 1000, 1), error=error,
                              put_off=waited),
        )
        with transaction.atomic(using=self.using):
            batch = (
                JobBatch.objects.using(self.using).select_for_update()
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
                batch.save(using=self.using, update_fields=[
                    "status", "attempts", "error", "duration_ms", "lease_until", "retry_after"])
                return
            count, middle = quarantine.keys_in(self.job, batch.start_key, batch.end_key,
                                               using=self.using)
            if count > 1:
                second = quarantine.split(batch, middle, count, using=self.using)
                log.info("run=%s job=%s batch=(%s,%s] split at %s to find the failing key(s)",
                         self.run_id, self.job.name, claim.start, claim.end, second.start_key,
                         extra=self._about(claim, split_at=second.start_key))
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
                using=self.using,
                update_fields=["status", "error", "duration_ms", "lease_until", "retry_after"],
            )

    def _quarantine(self, batch: JobBatch, key: int, error: str, sqlstate: str) -> None:
        """Set the one key aside and go on; pause the run when that is one key too many."""
        if quarantine.set_aside(batch, key, error, sqlstate, using=self.using) is None:
            return  # accepted earlier in this run
        run = self.runs.get(pk=self.run_id)
        record(run, run.status, run.status, self.name,
               f"key {key} quarantined after {batch.attempts} attempt(s): {error}",
               using=self.using)
        reason = quarantine.over_budget(run, self.tuning, using=self.using)
        if reason and run.status == RunStatus.RUNNING:
            transition(self.run_id, RunStatus.PAUSING, using=self.using, actor=self.name,
                       message=reason)

    def _give_up(self, batch: JobBatch, error: str) -> None:
        """A batch out of attempts fails, and with it the run, with the error for the operator."""
        batch.status = BatchStatus.FAILED
        batch.error = error
        batch.lease_until = None
        batch.finished_at = timezone.now()
        batch.save(using=self.using, update_fields=["status", "error", "lease_until", "finished_at"])
        message = (
            f"batch ({batch.start_key}, {batch.end_key}] failed after {batch.attempts} "
            f"attempt(s): {error}"
        )
        fold(self.run_id, using=self.using)
        run = self.runs.get(pk=self.run_id)
        if run.status in (RunStatus.RUNNING, RunStatus.PAUSING):
            transition(self.run_id, RunStatus.FAILED, using=self.using, actor=self.name,
                       message=message)

    # -- finishing ------------------------------------------------------------------------

    def _finalize(self) -> Outcome:
        """No batch left to claim: wait for others, catch up once, then verify."""
        with transaction.atomic(using=self.using):
            fold(self.run_id, using=self.using)
            run = self.runs.select_for_update().get(pk=self.run_id)
            if run.status != RunStatus.RUNNING:
                return Outcome(Kind.STOPPED, status=run.status)
            open_batches = run.batches.filter(status__in=[BatchStatus.PENDING, BatchStatus.RUNNING])
            if open_batches.exists():
                due = open_batches.aggregate(retry=Min("retry_after"), lease=Min("lease_until"))
                soonest = min(
                    d
                    for d in (due["retry"], due["lease"], timezone.now() + timedelta(seconds=1))
                    if d
                )
                delay = max(0.05, (soonest - timezone.now()).total_seconds())
                return Outcome(Kind.WAIT, delay=min(delay, 1.0), status=run.status)
            # A batch that committed between the fold above and that check is counted now: no
            # batch is open any more, so this fold sees every one (the run's totals are final).
            fold(self.run_id, using=self.using)
            run.refresh_from_db()
            with connections[self.using].cursor() as cursor:
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
                        run.save(using=self.using,
                                 update_fields=["caught_up", "min_key", "max_key", "updated_at"])
                        record(run, run.status, run.status, self.name, message, using=self.using)
                        return Outcome(Kind.CONTINUE)
                    run.save(using=self.using, update_fields=["caught_up", "updated_at"])
            status = conclude(run, self.job, self.name, using=self.using)
        return Outcome(Kind.DONE, status=status)

