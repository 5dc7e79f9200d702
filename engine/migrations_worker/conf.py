"""The engine's settings, each with its default, so a project sets only what it changes.

Every engine module reads its settings here, never `settings.X` directly: the engine assumes no
project, and a project that adds the app and a broker URL gets a working, safe engine.

- `MIGRATIONS_WORKER`: one dict; its keys and their defaults are `DEFAULTS` below (documented in
  docs/engine-install.md). A key the engine does not know is an error at start-up (checks.py),
  since a misspelt one would otherwise be silently ignored.
- `MW_STATUS_TOKEN`, `MW_FLOWER_URL`: plain settings, secrets and URLs a deployment sets from
  its environment.
- The Celery app's defaults (`CELERY_DEFAULTS`): worker-wide settings the engine needs, under
  whatever `CELERY_*` settings the project sets. What a run's safety rests on is not left to the
  project: the engine's tasks carry acks_late and reject_on_worker_lost themselves (tasks.py),
  and a route ahead of the project's sends them to the engine's queue, without changing the
  policy of the project's own tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

from .exceptions import UnknownTarget

DEFAULTS: dict[str, Any] = {
    # The Celery queue every engine task goes to; run workers with `-Q migrations` (and the
    # project's own queues). The engine names it on every message, so CELERY_TASK_ROUTES of the
    # project cannot send a run's slices to a queue no migration worker reads.
    "QUEUE": "migrations",
    # A run whose heartbeat is older than this is re-sent by the beat task requeue_stale_runs.
    "STALE_HEARTBEAT_SECONDS": 60,
    # How often beat runs requeue_stale_runs (seconds).
    "REQUEUE_INTERVAL_SECONDS": 15.0,
    # A gated migration (RequireJob) finishes a job inline when at most this many rows are left.
    "GATE_INLINE_LIMIT": 10_000,
    # The apps `lint_migrations` checks; None: every installed app with migrations that is not
    # an installed package (the project's own).
    "LINT_APPS": None,
    # squawk's configuration for `lint_migrations`; the engine ships one.
    "SQUAWK_CONFIG": Path(__file__).resolve().parent / "lint" / "squawk.toml",
    # The databases the engine migrates: alias -> labels ({"server": ..., "region": ...}); each
    # must be in DATABASES. None: only `default` (targets.py builds both from a targets file).
    "TARGETS": None,
    # At most this many databases of one PostgreSQL server (a target's `server` label, else its
    # host:port) have jobs worked at once, whichever workers and hosts work them; the others wait,
    # on hold `server_busy`, and start as those finish (runs/server_slots.py). None or 0: no limit.
    "SERVER_LIMIT": 4,
    # The streaming standbys a site has: application_names ("a,b") or how many ("2"); "" none.
    "STANDBYS": "",
    # Batch tuning under each job's and run's own (runs/throttle.py, `Tuning`).
    "TUNING": {},
    # The DDL lock-retry table (operations/lock_retry.py) under each operation's own.
    "DDL": {},
    # Fleet rollouts (fleet/): how often a target waiting at its gates is looked at again, and
    # after how long a step sent to the workers but not reported is sent again (a duplicate finds
    # the target's deploy lock taken and does nothing).
    "FLEET_POLL_SECONDS": 5.0,
    "FLEET_RESEND_SECONDS": 60.0,
    # What plain `manage.py migrate` (no app label) applies: "all", every migration in order, as
    # Django's does (development, tests, a new database); "pre", the pre-deploy stage only, as
    # `migrate_online --stage pre --require-complete` does: a pipeline whose release step is plain
    # `migrate` cannot break the release still serving (the post stage: `migrate_online --stage
    # post`, after the rollout). `migrate APP [NAME]` and `migrate_online` are not affected.
    "MIGRATE_STAGE": "all",
    # `migrate_online --plan` estimates (deploy/plan.py): a data job's rows per second on one
    # worker when neither a run here nor the job's `measured_rows_per_second` says; a table scan's
    # bytes per second (times a factor per kind of statement, `deploy.locks.COST`); and the
    # Celery workers the deploy's jobs share (`--workers` overrides it).
    "PLAN_ROWS_PER_SECOND": 5_000.0,
    "PLAN_SCAN_BYTES_PER_SECOND": 100 * 1024**2,
    "PLAN_WORKERS": 2,
    # A batch's own statements (its claim, its fence, its outcome, and the statements of a job
    # that sets `prepare_statements`) run as prepared statements: parsed and planned once per
    # worker session instead of once per batch (runs/prepared.py). False behind a pooler that
    # does not keep prepared statements across a session's transactions (PgBouncer in
    # transaction mode before 1.21, or without max_prepared_statements).
    "PREPARED_STATEMENTS": True,
}

REQUEUE_STALE_RUNS = "migrations_worker.requeue_stale_runs"
ADVANCE_ROLLOUTS = "migrations_worker.advance_rollouts"
ENGINE_TASKS = "migrations_worker.*"  # every task the engine registers (a Celery route glob)

# Under the project's CELERY_* settings: one message reserved per worker process at a time (a
# slice can run for seconds; a prefetched one would wait behind it, its lease ticking), and a
# broker that is not up yet retried at start rather than the worker exiting.
CELERY_DEFAULTS: dict[str, Any] = {
    "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
    "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
}


def get(name: str) -> Any:
    """`MIGRATIONS_WORKER[name]`, or the engine's default for it."""
    return getattr(settings, "MIGRATIONS_WORKER", {}).get(name, DEFAULTS[name])


def targets() -> dict[str, dict[str, str]]:
    """The databases the engine migrates, each with its labels; `default` alone without any."""
    return dict(get("TARGETS") or {"default": {}})


def require_target(name: str) -> str:
    """`name` if it is a declared target (`--database NAME`), else UnknownTarget naming them:
    a run started on a database the engine does not migrate would be found by no worker's beat."""
    declared = targets()
    if name not in declared:
        raise UnknownTarget(f"unknown database {name!r}: the declared targets are "
                            f"{', '.join(sorted(declared))} (MW_TARGETS_FILE)")
    return name


def unknown_keys() -> list[str]:
    return sorted(set(getattr(settings, "MIGRATIONS_WORKER", {})) - set(DEFAULTS))


# The shortest MW_STATUS_TOKEN accepted: the token is a password sent on every scrape, and a short
# one is guessed; 32 random characters (secrets.token_urlsafe(32) gives 43) are out of reach.
MIN_STATUS_TOKEN_LENGTH = 32
RANDOM_STRING_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def status_token() -> str:
    """`MW_STATUS_TOKEN`: a bearer token the status API accepts; "" turns token auth off."""
    return getattr(settings, "MW_STATUS_TOKEN", "")


def status_token_problem() -> str:
    """Why the configured status token may not be used (too short), or ''. The system check
    refuses it at start-up; the status API never accepts it either, for a web process started
    without the checks (gunicorn runs none)."""
    token = status_token()
    if not token or len(token) >= MIN_STATUS_TOKEN_LENGTH:
        return ""
    return (f"MW_STATUS_TOKEN is {len(token)} characters long; it must have at least "
            f"{MIN_STATUS_TOKEN_LENGTH} (or be empty, to turn token access off)")


def flower_url() -> str:
    """`MW_FLOWER_URL`: where operators find Flower; the admin links a run's tasks there."""
    return getattr(settings, "MW_FLOWER_URL", "")


class CelerySettings(Mapping):
    """Django's CELERY_* settings over `CELERY_DEFAULTS`, plus the engine's beat entries, under
    Celery's own names (`CELERY_RESULT_BACKEND` -> `result_backend`).

    Read by the Celery app when it first needs its configuration (after Django's settings are
    loaded). Celery's names, not the CELERY_ namespace: a few namespaced names are also Celery
    3's (`CELERY_RESULT_BACKEND`), and a namespaced app warns of them as deprecated in every
    worker's log. The beat entries re-send stale runs and advance open fleet rollouts; each is
    added unless the project's own CELERY_BEAT_SCHEDULE already schedules that task, and every
    engine task is routed to `MIGRATIONS_WORKER["QUEUE"]` (the task attribute `queue` that did
    this is deprecated in Celery 5)."""

    def _merged(self) -> dict[str, Any]:
        merged = {**CELERY_DEFAULTS,
                  **{key: getattr(settings, key) for key in dir(settings) if key.startswith("CELERY_")}}
        schedule = dict(merged.get("CELERY_BEAT_SCHEDULE") or {})
        for key, task in (("migrations_worker.requeue-stale-runs", REQUEUE_STALE_RUNS),
                          ("migrations_worker.advance-rollouts", ADVANCE_ROLLOUTS)):
            if not any(entry.get("task") == task for entry in schedule.values()):
                schedule[key] = {
                    "task": task, "schedule": float(get("REQUEUE_INTERVAL_SECONDS"))}
        merged["CELERY_BEAT_SCHEDULE"] = schedule
        # The engine's tasks go to the engine's queue whatever the project's routes say: a
        # router ahead of the project's (Celery takes the first that answers).
        routes = merged.get("CELERY_TASK_ROUTES")
        routes = list(routes) if isinstance(routes, (list, tuple)) else [routes] if routes else []
        merged["CELERY_TASK_ROUTES"] = [{ENGINE_TASKS: {"queue": get("QUEUE")}}, *routes]
        return {key.removeprefix("CELERY_").lower(): value for key, value in merged.items()}

    def __getitem__(self, key: str) -> Any:
        return self._merged()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())
