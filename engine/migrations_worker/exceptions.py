"""Every error the engine raises on purpose, under one base class, each with its exit code.

Commands map these types to exit codes (never message text), so `backfill`, `migrate_online`
and `migrate` answer a pipeline the same way. The tree:

    MigrationsWorkerError               1  something went wrong (the message says what)
    ├── InsideTransaction               1  a step that commits on its own was run inside one
    ├── InvalidInput                    2  the request is wrong: fix it and ask again
    │   ├── UnknownJob                     no job of that name is registered
    │   ├── InvalidTuning                  a batch size, worker count or tuning option
    │   ├── InvalidLockRetry               a DDL lock-retry timing table (settings or operation)
    │   ├── UnsupportedDatabase            not PostgreSQL 13+
    │   ├── InvalidTargets                 the targets file or its environment override
    │   └── UnknownTarget                  no target (database) of that name is declared
    ├── Conflict                        3  the request clashes with the state things are in
    │   ├── AlreadyActive                  the job already has a run
    │   ├── InvalidTransition              the run's status does not allow the action
    │   ├── DeployLocked                   another migrate_online holds the deploy lock
    │   ├── StageNotReady                  post-deploy asked for while pre-deploy work is pending
    │   ├── JobExists                      startjob: the job is registered, or a file it would
    │   │                                  write is there (it never overwrites one)
    │   ├── Irreversible                   a migration's reverse or a job's undo refused: the
    │   │                                  message says why and what to do instead
    │   └── RolloutOpen                    another fleet rollout is not over (or the same one was
    │                                      asked for with other options)
    ├── JobFailed                       4  a run failed or was cancelled: an operator must act
    │   └── RolloutHalted                  a target of a fleet rollout failed: the rollout stopped
    ├── TimedOut                        5  gave up waiting
    ├── BrokerUnavailable               6  the Celery broker cannot be reached
    ├── UnsafeDatabase                  7  sessions that would stall DDL, or a half-built schema
    └── Pending                         8  migrations or jobs are still to do
        ├── JobNotFinished                 a gated migration was reached before its job finished
        └── RolloutPaused                  a fleet rollout is paused by an operator
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every operator command (docs/troubleshooting.md, "Exit codes")."""

    OK = 0
    ERROR = 1
    INVALID_INPUT = 2
    CONFLICT = 3
    JOB_FAILED = 4
    TIMED_OUT = 5
    BROKER_UNAVAILABLE = 6
    UNSAFE_DATABASE = 7
    PENDING = 8


class MigrationsWorkerError(Exception):
    """Base of the engine's errors; `exit_code` is what a command exits with."""

    exit_code: ExitCode = ExitCode.ERROR


class InsideTransaction(MigrationsWorkerError):
    """A step that must commit on its own (a lock-safe DDL step, a gate that finishes a job
    inline) was run inside a transaction: the migration needs `atomic = False`."""


class InvalidInput(MigrationsWorkerError, ValueError):
    exit_code = ExitCode.INVALID_INPUT


class UnknownJob(InvalidInput, LookupError):
    pass


class InvalidTuning(InvalidInput):
    pass


class InvalidLockRetry(InvalidInput):
    pass


class UnsupportedDatabase(InvalidInput):
    pass


class InvalidTargets(InvalidInput):
    pass


class UnknownTarget(InvalidInput, LookupError):
    pass


class Conflict(MigrationsWorkerError):
    exit_code = ExitCode.CONFLICT


class AlreadyActive(Conflict):
    pass


class InvalidTransition(Conflict):
    pass


class DeployLocked(Conflict):
    pass


class StageNotReady(Conflict):
    pass


class JobExists(Conflict):
    """`startjob` was asked for a job that is registered already, or would write over a file."""


class Irreversible(Conflict):
    """A change cannot be put back as things are: a migration whose reverse would lose data (or
    cannot be written), or a job's undo that the schema does not allow yet. The message says why
    and what to do instead (the undo to run first, the migration to take back first)."""


class RolloutOpen(Conflict):
    """A fleet rollout is not over: one at a time, and a re-run must ask for the same one."""


class JobFailed(MigrationsWorkerError):
    exit_code = ExitCode.JOB_FAILED


class RolloutHalted(JobFailed):
    """A target of a fleet rollout failed; nothing more is sent until an operator retries or
    skips it (the message names the target, why, and the command)."""


class TimedOut(MigrationsWorkerError):
    exit_code = ExitCode.TIMED_OUT


class BrokerUnavailable(MigrationsWorkerError):
    exit_code = ExitCode.BROKER_UNAVAILABLE


class UnsafeDatabase(MigrationsWorkerError):
    exit_code = ExitCode.UNSAFE_DATABASE


class Pending(MigrationsWorkerError):
    exit_code = ExitCode.PENDING


class JobNotFinished(Pending):
    """A gated migration was reached before its job finished. Carries the job's name."""

    def __init__(self, job_name: str, message: str):
        super().__init__(message)
        self.job_name = job_name


class RolloutPaused(Pending):
    """A fleet rollout is paused: `fleet resume` goes on."""
