"""Progress tables: a row per job run, a row per batch, a log of status changes, the ETA each
run showed at its checkpoints, and the keys a run set aside.

Everything an operator or a crashed worker needs to pick a job up again lives here, in the same
PostgreSQL database as the data, so a batch's effect and its bookkeeping commit together.
"""

from django.db import models
from django.db.models import Q


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    FINISHED = "finished"

    @classmethod
    def terminal(cls) -> tuple["RunStatus", ...]:
        """Where a run stops: no worker takes it up again unless an operator acts (a failed run
        can be retried; a cancelled or finished one is over). Entering one ends the run's clock
        (`finished_at`); status pages show no heartbeat for it, and waiting commands stop."""
        return (cls.FINISHED, cls.CANCELLED, cls.FAILED)


# A job has at most one run in these states at a time (enforced by a partial unique index).
ACTIVE_STATUSES = (
    RunStatus.PENDING,
    RunStatus.RUNNING,
    RunStatus.PAUSING,
    RunStatus.PAUSED,
    RunStatus.CANCELLING,
    RunStatus.FAILED,
)
# States in which workers claim batches.
WORKING_STATUSES = (RunStatus.RUNNING,)


class BatchStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # One key whose every attempt failed for a reason other than a busy database: set aside
    # (a QuarantinedKey says why) while the run goes on.
    QUARANTINED = "quarantined"


class HoldKind(models.TextChoices):
    """Why a health check put a run on hold (runs/throttle.py, one check each): stored with the
    hold and with its event, so the metrics and the admin count and show holds by kind without
    reading their text."""

    LOCK_WAITERS = "lock_waiters", "lock waiters"  # the application queues on the job's tables
    DDL_BACKOFF = "ddl_backoff", "ddl backoff"  # a deploy step was refused a lock, asks again
    LONG_TRANSACTION = "long_transaction", "long transaction"  # holds back vacuum
    MISSING_STANDBY = "missing_standby", "missing standby"  # expected, not connected or unreadable
    REPLICA_LAG = "replica_lag", "replica lag"  # a standby replays too far behind
    STANDBY_SLOT = "standby_slot", "standby slot"  # a slot of no connected standby retains WAL
    SERVER_BUSY = "server_busy", "server busy"  # the server's limit of databases at once is reached


def percent_done(rows_done: int, estimated_total: int) -> float:
    """Short of 100 until the run is verified: the estimate is a count taken at enqueue."""
    if not estimated_total:
        return 0.0
    return min(99.9, 100.0 * rows_done / estimated_total)


class JobRun(models.Model):
    job_name = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    # Key bounds frozen at enqueue; the catch-up pass may extend max_key once before finishing.
    min_key = models.BigIntegerField(null=True, blank=True)
    max_key = models.BigIntegerField(null=True, blank=True)
    cursor = models.BigIntegerField(null=True, blank=True, help_text="Last key handed to a batch.")
    caught_up = models.BooleanField(default=False)
    batch_size = models.PositiveIntegerField()
    workers = models.PositiveSmallIntegerField(default=1)
    options = models.JSONField(default=dict, blank=True)
    rows_done = models.BigIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    estimated_total = models.BigIntegerField(default=0)
    avg_seconds_per_row = models.FloatField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)
    # Fences Celery messages: a message from an older dispatch does nothing.
    dispatch_epoch = models.PositiveIntegerField(default=0)
    hold_reason = models.CharField(max_length=300, blank=True, default="")
    # The kind of the hold (HoldKind); "" when not held, or held by an engine from before kinds.
    hold_kind = models.CharField(max_length=20, choices=HoldKind.choices, blank=True, default="",
                                 db_default="")
    hold_until = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_name"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="migrations_worker_one_active_run_per_job",
            ),
            models.CheckConstraint(
                condition=Q(batch_size__gt=0), name="migrations_worker_run_batch_size_positive"
            ),
        ]
        permissions = [("operate_jobrun", "Can pause, resume, cancel and retry job runs")]

    def __str__(self) -> str:
        return f"{self.job_name} #{self.pk} ({self.status})"

    @property
    def percent(self) -> float:
        if self.status == RunStatus.FINISHED:
            return 100.0
        return percent_done(self.rows_done, self.estimated_total)


class JobBatch(models.Model):
    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="batches")
    start_key = models.BigIntegerField(help_text="Exclusive lower bound.")
    end_key = models.BigIntegerField(help_text="Inclusive upper bound.")
    status = models.CharField(
        max_length=20, choices=BatchStatus.choices, default=BatchStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    batch_size = models.PositiveIntegerField()
    rows_affected = models.BigIntegerField(default=0)
    duration_ms = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    retry_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The job's counters of this batch (BatchResult.counts), summed into the run's report.
    counts = models.JSONField(null=True, blank=True)
    # Whether the run's totals (rows_done, batches_done, report) hold what this batch did, or
    # it has nothing to add: a batch that succeeds clears it in the transaction of its data
    # change, and the statement that adds it to the run sets it again, so every batch is
    # counted exactly once however many workers fold. True by default, also in the database:
    # a batch written by an engine from before folding adds to the run itself.
    folded = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["run_id", "start_key"]
        indexes = [
            models.Index(fields=["run", "status"], name="mw_batch_run_status_idx"),
            models.Index(fields=["run", "folded"], name="mw_batch_run_folded_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["run", "start_key"], name="mw_batch_run_start_uniq"),
        ]
        verbose_name_plural = "job batches"

    def __str__(self) -> str:
        return f"({self.start_key}, {self.end_key}] {self.status}"


class JobRunEvent(models.Model):
    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20)
    actor = models.CharField(max_length=200, blank=True, default="")
    message = models.TextField(blank=True, default="")
    # The kind of the hold this event records (HoldKind); "" for every other event.
    hold_kind = models.CharField(max_length=20, choices=HoldKind.choices, blank=True, default="",
                                 db_default="")

    class Meta:
        ordering = ["run_id", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class JobRunCheckpoint(models.Model):
    """The ETA a run showed as it passed a checkpoint (10%, 50%), to hold against its actual end
    (`eta`). Taken by the fold of batch figures into the run that passes it.

    A table of its own rather than a column of JobRun: every engine query reads JobRun, so a new
    column would break the engine wherever its code runs ahead of its schema (a migration that
    enqueues a job applied before this app's own migration, a release rolling out before its
    migrations); this table is only written when a checkpoint is passed, and not at all before
    it exists."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="checkpoints")
    checkpoint = models.PositiveSmallIntegerField(help_text="Percent: 10 or 50.")
    percent = models.FloatField(help_text="Where the run really was when it was taken.")
    at = models.DateTimeField()
    eta_seconds = models.FloatField(help_text="The ETA the run showed then.")

    class Meta:
        ordering = ["run_id", "checkpoint"]
        constraints = [
            models.UniqueConstraint(fields=["run", "checkpoint"], name="mw_checkpoint_run_uniq"),
        ]

    def __str__(self) -> str:
        return f"run #{self.run_id} at {self.checkpoint}%: ETA {self.eta_seconds:.0f}s"


class Resolution(models.TextChoices):
    OPEN = "open"  # waits for an operator: the run cannot finish, its gate stays shut
    ACCEPTED = "accepted"  # an operator let the run finish without this key
    RETRIED = "retried"  # requeued by `backfill retry` (a new row if it fails again)


class QuarantinedKey(models.Model):
    """A key of a run whose batch failed on every attempt for a reason other than a busy
    database (a bad row, a constraint the job's change breaks): set aside, so the rest of the
    run goes on and the operator learns exactly which row, with the error and its SQLSTATE."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="quarantined")
    batch = models.ForeignKey(JobBatch, on_delete=models.CASCADE, related_name="quarantined")
    key = models.BigIntegerField()
    error = models.TextField()
    sqlstate = models.CharField(max_length=5, blank=True, default="")
    attempts = models.PositiveIntegerField()
    resolution = models.CharField(max_length=20, choices=Resolution.choices,
                                  default=Resolution.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["run_id", "key", "id"]
        indexes = [models.Index(fields=["run", "resolution"], name="mw_quarantine_run_res_idx")]
        verbose_name = "quarantined key"

    def __str__(self) -> str:
        return f"run #{self.run_id} key {self.key} ({self.resolution})"


class ServerSlot(models.Model):
    """A lease on one of a PostgreSQL server's slots (MIGRATIONS_WORKER["SERVER_LIMIT"]): the
    run `run_id` of the target database `target`, on `server`, may work batches until
    `lease_until` (runs/server_slots.py). Only the control database (`default`) holds rows:
    every worker of every host reads the same ones. A lease nobody renews (its worker died)
    simply runs out; no process needs to survive for a slot to come free."""

    server = models.CharField(max_length=200)
    target = models.CharField(max_length=100)
    run_id = models.BigIntegerField(help_text="The run's id in its own target database.")
    holder = models.CharField(max_length=200, help_text="The worker that renewed it last.")
    taken_at = models.DateTimeField()
    lease_until = models.DateTimeField()

    class Meta:
        ordering = ["server", "target", "run_id"]
        indexes = [models.Index(fields=["server", "lease_until"], name="mw_slot_server_lease_idx")]
        constraints = [
            models.UniqueConstraint(fields=["target", "run_id"], name="mw_slot_target_run_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.server}: {self.target} run #{self.run_id} until {self.lease_until}"


class RolloutStatus(models.TextChoices):
    """A rollout's life (fleet/rollouts.py). Only one rollout is not over at a time."""

    RUNNING = "running"  # targets of the current wave are worked, the next wave waits for them
    PAUSED = "paused"  # an operator paused it: no step is sent until `fleet resume`
    HALTED = "halted"  # a target failed: nothing more is sent until `fleet retry` or `fleet skip`
    DONE = "done"  # every target passed its stage (or was skipped)

    @classmethod
    def open(cls) -> tuple["RolloutStatus", ...]:
        return (cls.RUNNING, cls.PAUSED, cls.HALTED)


class TargetStatus(models.TextChoices):
    """Where one target of a rollout stands."""

    PENDING = "pending"  # its wave has not reached it
    RUNNING = "running"  # a step applies its migrations (or was sent to a worker to)
    WAITING = "waiting"  # stopped at gates: its data jobs run, a step looks again soon
    HELD = "held"  # its server did not answer; a step tries again soon, nothing is lost
    PASSED = "passed"  # its stage is done and verified
    FAILED = "failed"  # its stage failed: the rollout halts
    SKIPPED = "skipped"  # an operator skipped it, with a reason

    @classmethod
    def active(cls) -> tuple["TargetStatus", ...]:
        return (cls.RUNNING, cls.WAITING, cls.HELD)

    @classmethod
    def through(cls) -> tuple["TargetStatus", ...]:
        """A wave is through when each of its targets is in one of these."""
        return (cls.PASSED, cls.SKIPPED)


class Rollout(models.Model):
    """One stage of a deploy across many databases, in waves (fleet/rollouts.py). Lives in the
    control database (`default`) only; each target's own progress stays in its own tables, so
    this is a summary that `fleet rollout` can rebuild by looking at the targets."""

    stage = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=RolloutStatus.choices,
                              default=RolloutStatus.RUNNING)
    waves_spec = models.CharField(max_length=200, help_text="As asked: '1,25%,100%'.")
    select = models.JSONField(default=dict, blank=True, help_text="Labels a target must have.")
    parallel = models.PositiveSmallIntegerField()
    actor = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["status"], name="mw_one_open_rollout",
                                    condition=Q(status__in=["running", "paused", "halted"])),
        ]

    def __str__(self) -> str:
        return f"rollout #{self.pk} ({self.stage}, {self.status})"


class RolloutTarget(models.Model):
    """One target of a rollout: its wave, where its stage stands, and what its last step saw."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="targets")
    target = models.CharField(max_length=100)
    server = models.CharField(max_length=200, blank=True, default="")
    wave = models.PositiveSmallIntegerField(help_text="1 is the canary.")
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=TargetStatus.choices,
                              default=TargetStatus.PENDING)
    attempt = models.PositiveIntegerField(default=0, help_text="Raised by each start and retry; "
                                          "a step of an older attempt does nothing.")
    steps = models.PositiveIntegerField(default=0)
    detail = models.TextField(blank=True, default="", help_text="What the last step saw.")
    jobs = models.JSONField(default=list, blank=True, help_text="Its data jobs, as last seen.")
    applied = models.JSONField(default=list, blank=True, help_text="Migrations applied by it.")
    error = models.TextField(blank=True, default="")
    reason = models.TextField(blank=True, default="", help_text="An operator's retry or skip.")
    next_step_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rollout", "wave", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "target"], name="mw_rollout_target_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.target} (wave {self.wave}, {self.status})"


class RolloutEvent(models.Model):
    """The rollout's timeline: waves started, targets started, passed, held, failed, retried."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    target = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=20)
    actor = models.CharField(max_length=200, blank=True, default="")
    message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.target or 'rollout'} {self.kind}: {self.message}"
