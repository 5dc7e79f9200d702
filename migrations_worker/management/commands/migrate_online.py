"""`manage.py migrate_online`: the deploy step's `migrate`, gated by the data jobs.

Applies, in dependency order, every unapplied migration whose prerequisites are met: a migration
with `RequireJob` is applied only once its job is finished (a small remainder is finished inline,
exactly as RequireJob itself would), and every migration that depends on a held one is held
with it. Independent migrations, in other apps, still go ahead. The jobs the held gates need are
enqueued (started, or dispatched if they were left pending), and what is pending is printed:
the job, its progress and ETA, and the commands to watch or finish it.

    migrate_online                  apply what can be applied, stop cleanly at the gates
    migrate_online --wait [--timeout S]
                                    ... and wait for each gate's job with live progress, going on
                                    past each gate as its job finishes
    migrate_online --check          change nothing; exit 3 if migrations or jobs are pending
    migrate_online --plan           print the unapplied migrations with each one's gate
    migrate_online --wait-for-db S  wait until the database accepts connections
    migrate_online --preflight [--min-age S] [--session-wait S] [--strict]
                                    warn about (or wait out) sessions that would stall DDL
    migrate_online --postflight     fail if any index is INVALID or any constraint unvalidated

One deploy at a time: a second one waits up to --lock-wait seconds for the first to end, then
refuses. A deploy that is killed has its server session ended within a second (PostgreSQL 14+,
`client_connection_check_interval`), so a rerun is not locked out by the statement it left
running. A database session lost mid-deploy (a restart, a failover) is reconnected and the
deploy goes on: every step is re-runnable, so that is what a rerun would do.

Exit codes, for deploy pipelines:
    0  done, or stopped cleanly at a gate whose job is still running (or paused)
    1  error: a migration failed, inconsistent history, conflicting migrations, another deploy
       still running, the database not supported (not PostgreSQL 13+) or not reachable again
    3  --check: something is pending
    4  a gate's job has failed: an operator must act (`backfill retry JOB`)
    5  timed out: --wait --timeout, or --wait-for-db
    7  the database is not safe to migrate or was left half-migrated (--preflight --strict
       with blocking sessions left, --postflight with invalid indexes or constraints)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand, CommandError
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.operations import SeparateDatabaseAndState
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from migrations_worker import control, deploy_checks, runner
from migrations_worker.checks import require_supported_database
from migrations_worker.ddl import Safely
from migrations_worker.job import get_job
from migrations_worker.management.arguments import positive_seconds, seconds
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.operations import (
    EnqueueJob,
    JobNotFinished,
    RequireJob,
    default_inline_limit,
    ensure_job_finished,
)
from migrations_worker.progress import one_line, progress_of
from migrations_worker.states import InvalidTransition

EXIT_ERROR, EXIT_PENDING, EXIT_JOB_FAILED, EXIT_TIMEOUT, EXIT_UNSAFE = 1, 3, 4, 5, 7
ACTOR = "migrate_online"
# Session advisory lock: one deploy step at a time per database.
DEPLOY_LOCK_KEY = 0x6D69677261746531
# PostgreSQL 14+ checks this often that the deploy is still connected while a statement runs,
# and cancels the statement of a deploy that was killed.
CLIENT_CHECK_INTERVAL = "1s"
# A lost database session is reconnected this many times per run, waiting this long each time.
MAX_RECONNECTS = 10
DEFAULT_LOCK_WAIT_SECONDS = 15.0
RECONNECT_WAIT_SECONDS = 120.0


def database_operations(operations: list) -> Iterator:
    """Every operation that runs against the database, including nested ones."""
    for operation in operations:
        yield operation
        if isinstance(operation, Safely):
            yield from database_operations(operation.operations)
        elif isinstance(operation, SeparateDatabaseAndState):
            yield from database_operations(operation.database_operations)


def gates_of(migration: Migration) -> list[RequireJob]:
    return [op for op in database_operations(migration.operations) if isinstance(op, RequireJob)]


def enqueues_of(migration: Migration) -> list[str]:
    return [op.job_name for op in database_operations(migration.operations)
            if isinstance(op, EnqueueJob)]


def label(migration: Migration) -> str:
    return f"{migration.app_label}.{migration.name}"


def inline_limit(gate: RequireJob) -> int:
    """The limit RequireJob itself applies (None means the project-wide default)."""
    return default_inline_limit() if gate.inline_limit is None else gate.inline_limit


def engine_tables_exist() -> bool:
    return JobRun._meta.db_table in connection.introspection.table_names()


@dataclass(frozen=True)
class Gate:
    """What stands between a migration and its job, read without changing anything."""

    job: str
    state: str  # "open", "inline" (finishes inline when applied), "closed", "failed", "unknown"
    run: JobRun | None
    remaining: int | None = None

    def describe(self) -> str:
        if self.state == "unknown":
            return f"{self.job}: decided when reached (its tables are created earlier in the plan)"
        if self.state == "open":
            return f"{self.job}: finished"
        if self.state == "inline":
            return f"{self.job}: {self.remaining:,} row(s) left, finished inline when applied"
        if self.run is None:
            return f"{self.job}: no run yet, {self.remaining:,} row(s) to do"
        return one_line(progress_of(self.run))


def read_gate(gate: RequireJob) -> Gate:
    """The decision `ensure_job_finished` would make, without making it."""
    if not engine_tables_exist():
        return Gate(gate.job_name, "unknown", None)
    latest = control.latest_run(gate.job_name)
    if latest is not None and latest.status == RunStatus.FINISHED:
        return Gate(gate.job_name, "open", latest, 0)
    run = control.active_run(gate.job_name)
    if run is not None and run.status == RunStatus.FAILED:
        return Gate(gate.job_name, "failed", run)
    try:
        with connection.cursor() as cursor:
            remaining = get_job(gate.job_name).count_remaining(cursor)
    except DatabaseError:  # the job's tables come with migrations not applied yet
        return Gate(gate.job_name, "unknown", None)
    blocked = run is not None and run.status in (
        RunStatus.PAUSED, RunStatus.PAUSING, RunStatus.CANCELLING
    )
    if not blocked and remaining <= inline_limit(gate):
        return Gate(gate.job_name, "inline", run, remaining)
    return Gate(gate.job_name, "closed", run or latest, remaining)


@dataclass
class Pass:
    """One pass over the plan: what was applied and what is held behind which gate."""

    applied: list[str] = field(default_factory=list)
    gated: dict[str, str] = field(default_factory=dict)  # migration -> job it waits for
    held: dict[str, str] = field(default_factory=dict)  # migration -> held migration it needs
    closed: dict[str, JobNotFinished] = field(default_factory=dict)  # job -> why


class Command(BaseCommand):
    help = "Apply migrations online: enqueue data jobs, stop (or wait) at the gates they guard."
    requires_system_checks = []  # `migrate` runs its own; a deploy must not fail on a warning

    def add_arguments(self, parser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true",
                          help="change nothing; exit 3 if migrations or jobs are pending")
        mode.add_argument("--plan", action="store_true",
                          help="print the unapplied migrations and each one's gate")
        mode.add_argument("--wait", action="store_true",
                          help="wait at each gate for its job, with live progress")
        mode.add_argument("--preflight", action="store_true",
                          help="report sessions that would stall DDL, then exit")
        mode.add_argument("--postflight", action="store_true",
                          help="fail if an index is INVALID or a constraint unvalidated")
        mode.add_argument("--wait-for-db", type=seconds, metavar="SECONDS",
                          help="wait until the database accepts connections, then exit")
        parser.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                            help="with --wait: give up (exit 5) after this long")
        parser.add_argument("--poll", type=positive_seconds, default=2.0, metavar="SECONDS",
                            help="with --wait: how often to read the jobs' progress")
        parser.add_argument("--min-age", type=seconds, default=deploy_checks.DEFAULT_MIN_AGE_SECONDS,
                            metavar="SECONDS",
                            help="with --preflight: a transaction older than this may stall DDL")
        parser.add_argument("--session-wait", type=seconds, default=0.0, metavar="SECONDS",
                            help="with --preflight: wait this long for such sessions to end")
        parser.add_argument("--strict", action="store_true",
                            help="with --preflight: exit 7 if such sessions are still there")
        parser.add_argument("--lock-wait", type=seconds, default=DEFAULT_LOCK_WAIT_SECONDS,
                            metavar="SECONDS",
                            help="wait this long for another migrate_online to end (default "
                                 f"{DEFAULT_LOCK_WAIT_SECONDS:.0f}s) before refusing to start")

    def handle(self, *args, **options) -> None:
        self.console = Console(file=self.stdout, highlight=False, soft_wrap=True)
        self.verbosity = options["verbosity"]
        if options["wait_for_db"] is not None:
            return self.wait_for_db(options["wait_for_db"])
        if options["preflight"]:
            return self.preflight(options)
        if options["postflight"]:
            return self.postflight()
        if options["plan"]:
            return self.show_plan()
        if options["check"]:
            return self.check()
        require_supported_database()
        self.take_deploy_lock(options["lock_wait"])
        try:
            return self.migrate(options)
        finally:
            self.release_deploy_lock()

    # -- one deploy at a time -----------------------------------------------------------------

    def take_deploy_lock(self, wait: float) -> None:
        """The session advisory lock that keeps a second deploy out, waited for up to `wait`
        seconds: a rerun may arrive while the session of the deploy it replaces is still
        being torn down by the server."""
        with connection.cursor() as cursor:
            if connection.pg_version >= 140000:
                # A killed deploy's statement (an index build waiting out old transactions)
                # would otherwise run on, holding this lock, until it ends by itself.
                cursor.execute("SELECT set_config('client_connection_check_interval', %s, false)",
                               [CLIENT_CHECK_INTERVAL])
            deadline = time.monotonic() + wait
            told = False
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [DEPLOY_LOCK_KEY])
                if cursor.fetchone()[0]:
                    return
                holder = self.lock_holder(cursor)
                if time.monotonic() >= deadline:
                    raise CommandError(
                        f"another migrate_online is running against this database ({holder}); "
                        "let it finish (or stop it) before starting a second one",
                        returncode=EXIT_ERROR,
                    )
                if not told:
                    self.console.print(f"waiting up to {wait:.0f}s for another migrate_online "
                                       f"to end ({holder})")
                    told = True
                time.sleep(0.5)

    @staticmethod
    def lock_holder(cursor) -> str:
        cursor.execute(
            "SELECT a.pid, coalesce(a.application_name, ''), a.state, "
            "coalesce(left(a.query, 80), '') FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
            [DEPLOY_LOCK_KEY],
        )
        row = cursor.fetchone()
        if row is None:
            return "it has just ended"
        pid, application, state, query = row
        return f"pid {pid}, {application or 'unnamed'}, {state}: {' '.join(query.split())}"

    def release_deploy_lock(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [DEPLOY_LOCK_KEY])
        except DatabaseError:
            # The session is gone, and its lock with it; the error that ended the deploy (if
            # any) is the one to report, not this one.
            connection.close()

    def reconnect(self, exc: DatabaseError, attempt: int, options) -> None:
        """The database session was lost (a restart, a failover, a terminated backend): wait
        for the server, take the deploy lock again and carry on. Every step is re-runnable, so
        going on is what a rerun of the whole command would do."""
        connection.close()
        self.console.print(f"[yellow]warning:[/] lost the database connection "
                           f"({type(exc).__name__}: {str(exc).strip()}); reconnecting "
                           f"({attempt}/{MAX_RECONNECTS})")
        error = deploy_checks.wait_for_database(RECONNECT_WAIT_SECONDS)
        if error:
            raise CommandError(f"database not reachable again after {RECONNECT_WAIT_SECONDS:.0f}s: "
                               f"{error}", returncode=EXIT_ERROR) from exc
        self.take_deploy_lock(options["lock_wait"])

    def migrate(self, options) -> None:
        deadline = None if options["timeout"] is None else time.monotonic() + options["timeout"]
        reconnects = 0
        while True:
            try:
                if self.migrate_pass(options, deadline):
                    return None
            except DatabaseError as exc:
                if not runner.connection_lost(exc) or reconnects >= MAX_RECONNECTS:
                    raise
                reconnects += 1
                self.reconnect(exc, reconnects, options)

    def migrate_pass(self, options, deadline: float | None) -> bool:
        """Apply what can be applied; True when done (or stopped cleanly at a gate)."""
        result = self.apply_pass()
        if not result.gated:
            self.console.print(f"migrate_online: done, {len(result.applied)} migration(s) "
                               "applied in the last pass; nothing pending")
            return True
        self.ensure_jobs_enqueued(result)
        self.report_gates(result)
        failed = self.failed_jobs(result)
        if failed:
            raise CommandError(
                "a gate's job has failed: " + "; ".join(failed)
                + ". Fix the cause, then `python manage.py backfill retry JOB` and deploy again.",
                returncode=EXIT_JOB_FAILED,
            )
        if not options["wait"]:
            self.console.print("migrate_online: stopped cleanly at the gate(s) above; run it "
                               "again (or with --wait) once the jobs are finished")
            return True
        self.wait_for_jobs(sorted(set(result.gated.values())), deadline, options["poll"])
        return False

    # -- the plan ---------------------------------------------------------------------------

    def executor(self) -> MigrationExecutor:
        executor = MigrationExecutor(connection, self.progress)
        executor.loader.check_consistent_history(connection)
        conflicts = executor.loader.detect_conflicts()
        if conflicts:
            names = "; ".join(f"{app}: {', '.join(sorted(n))}" for app, n in conflicts.items())
            raise CommandError(f"conflicting migrations ({names}): run makemigrations --merge",
                               returncode=EXIT_ERROR)
        return executor

    def unapplied(self, executor: MigrationExecutor) -> list[Migration]:
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        return [migration for migration, _backwards in plan]

    def progress(self, action: str, migration: Migration | None = None, fake: bool = False) -> None:
        if self.verbosity < 1:
            return
        if action == "apply_start":
            self.stdout.write(f"  applying {label(migration)}...", ending="")
            self.stdout.flush()
        elif action == "apply_success":
            self.stdout.write(self.style.SUCCESS(" OK"))

    # -- applying ---------------------------------------------------------------------------

    def apply_pass(self) -> Pass:
        """Apply every unapplied migration whose gates are open and whose parents are applied."""
        executor = self.executor()
        plan = self.unapplied(executor)
        result = Pass()
        if not plan:
            return result
        graph = executor.loader.graph
        pre_state = executor._create_project_state(with_applied_migrations=True)
        emit_pre_migrate_signal(self.verbosity - 1, False, DEFAULT_DB_ALIAS, stdout=self.stdout,
                                apps=pre_state.apps, plan=[(m, False) for m in plan])
        state = pre_state.clone()
        targets = graph.leaf_nodes()
        for migration in plan:
            parents = (".".join(p.key) for p in graph.node_map[migration.app_label,
                                                             migration.name].parents)
            held_parent = next(
                (p for p in parents if p in result.gated or p in result.held), None
            )
            if held_parent is not None:
                result.held[label(migration)] = held_parent
                continue
            job = self.closed_gate(migration, result)
            if job is not None:
                result.gated[label(migration)] = job
                continue
            state = executor.migrate(targets, plan=[(migration, False)], state=state)
            result.applied.append(label(migration))
        if result.applied:  # content types, permissions: what `migrate` does after applying
            state.clear_delayed_apps_cache()
            emit_post_migrate_signal(self.verbosity - 1, False, DEFAULT_DB_ALIAS,
                                     stdout=self.stdout, apps=state.apps,
                                     plan=[(m, False) for m in plan
                                           if label(m) in result.applied])
        return result

    def closed_gate(self, migration: Migration, result: Pass) -> str | None:
        """The job that keeps `migration` back, or None once every gate of it is open."""
        for gate in gates_of(migration):
            if gate.job_name in result.closed:
                return gate.job_name
            try:
                ensure_job_finished(gate.job_name, inline_limit(gate), gate=migration.app_label)
            except JobNotFinished as exc:
                result.closed[gate.job_name] = exc
                return gate.job_name
        return None

    def ensure_jobs_enqueued(self, result: Pass) -> None:
        """A gate asks for its job: start it if nothing runs it, dispatch it if left pending."""
        from migrations_worker.dispatch import ensure_broker

        for job in sorted(result.closed):
            run = control.active_run(job)
            if run is not None and run.status != RunStatus.PENDING:
                continue
            latest = control.latest_run(job)
            if run is None and latest is not None and latest.status == RunStatus.FINISHED:
                # It finished after this pass read its gate: the next pass opens the gate. A new
                # run now would walk the whole table again for nothing.
                continue
            try:
                ensure_broker(timeout=2.0)
            except control.BrokerUnavailable as exc:
                self.console.print(f"[yellow]warning:[/] {job} cannot be sent to workers: {exc}")
                continue
            try:
                if run is None:
                    run = control.create_run(job, actor=ACTOR)
                run = control.dispatch_run(run.pk, actor=ACTOR, message="enqueued by migrate_online",
                                           expected=(RunStatus.PENDING,),
                                           refusal="sent by someone else just now")
            except (control.AlreadyActive, InvalidTransition):
                continue  # someone else (beat, another start) started or sent it just now
            self.console.print(f"enqueued {job} run #{run.pk} for the workers")

    def failed_jobs(self, result: Pass) -> list[str]:
        failed = []
        for job in sorted(set(result.gated.values())):
            run = control.active_run(job)
            if run is not None and run.status == RunStatus.FAILED:
                failed.append(one_line(progress_of(run)))
        return failed

    def report_gates(self, result: Pass) -> None:
        if result.applied:
            self.console.print(f"applied {len(result.applied)} migration(s)")
        self.console.print(f"[bold]pending:[/] {len(result.gated)} migration(s) wait for data jobs"
                           + (f", {len(result.held)} more depend on them" if result.held else ""))
        for migration, job in result.gated.items():
            run = control.latest_run(job)
            state = one_line(progress_of(run)) if run else f"{job}: no run yet"
            self.console.print(f"  {migration} waits for job {job}\n    {state}")
        for job in sorted(set(result.gated.values())):
            self.console.print(f"  watch it:  python manage.py backfill status {job} --watch")
            self.console.print(f"  finish it in the foreground:  python manage.py backfill run {job}")
        for migration, parent in result.held.items():
            self.console.print(f"  {migration} (needs {parent})")
        self.console.print("  then:  python manage.py migrate_online   (or --wait to wait here)")

    # -- waiting ----------------------------------------------------------------------------

    def wait_for_jobs(self, jobs: list[str], deadline: float | None, poll: float) -> None:
        """Until one of `jobs` finishes (then the caller makes another pass), with progress."""
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[detail]}"))
        last_line = 0.0
        with Progress(*columns, console=self.console, transient=False) as bar:
            tasks = {job: bar.add_task(job, total=100, detail="") for job in jobs}
            while True:
                runs = {job: control.latest_run(job) for job in jobs}
                for job, run in runs.items():
                    if run is None:
                        continue
                    p = progress_of(run)
                    bar.update(tasks[job], completed=p.percent,
                               detail=f"{p.status}, {p.rows_done:,}/~{p.estimated_total:,} rows, "
                                      f"ETA {p.eta}" + (f", on hold: {p.hold_reason}"
                                                         if p.hold_reason else ""))
                if any(r is not None and r.status == RunStatus.FINISHED for r in runs.values()):
                    return
                failed = [r for r in runs.values() if r is not None and r.status == RunStatus.FAILED]
                if failed:
                    raise CommandError(
                        "a gate's job has failed: " + "; ".join(one_line(progress_of(r)) for r in failed)
                        + ". Fix the cause, then `python manage.py backfill retry JOB`.",
                        returncode=EXIT_JOB_FAILED,
                    )
                if any(r is not None and r.status == RunStatus.CANCELLED for r in runs.values()):
                    return  # cancelled under us: the next pass decides (and starts it again)
                if deadline is not None and time.monotonic() >= deadline:
                    raise CommandError(
                        "timed out waiting for: " + "; ".join(
                            one_line(progress_of(r)) for r in runs.values() if r is not None
                        ), returncode=EXIT_TIMEOUT,
                    )
                if not self.console.is_terminal and time.monotonic() - last_line >= 10:
                    last_line = time.monotonic()  # a log, not a screen: a line now and then
                    for run in runs.values():
                        if run is not None:
                            self.stdout.write(f"  waiting: {one_line(progress_of(run))}")
                time.sleep(poll)

    # -- read-only views ----------------------------------------------------------------------

    def gate_lines(self, migration: Migration, gates: dict[str, Gate]) -> list[str]:
        lines = []
        for gate in gates_of(migration):
            if gate.job_name not in gates:
                gates[gate.job_name] = read_gate(gate)
            lines.append(f"gate: {gates[gate.job_name].describe()}")
        lines += [f"enqueues: {job}" for job in enqueues_of(migration)]
        return lines

    def show_plan(self) -> None:
        plan = self.unapplied(self.executor())
        if not plan:
            self.console.print("migrate_online: no unapplied migrations")
            return
        gates: dict[str, Gate] = {}
        self.console.print(f"{len(plan)} unapplied migration(s), in order:")
        for migration in plan:
            self.console.print(f"  {label(migration)}")
            for line in self.gate_lines(migration, gates):
                self.console.print(f"      {line}")

    def pending_jobs(self, executor: MigrationExecutor) -> list[JobRun]:
        """Runs still under way of the jobs the migrations enqueue or require."""
        if not engine_tables_exist():
            return []
        jobs = set()
        for migration in executor.loader.disk_migrations.values():
            jobs |= {gate.job_name for gate in gates_of(migration)} | set(enqueues_of(migration))
        runs = [control.active_run(job) for job in sorted(jobs)]
        return [run for run in runs if run is not None]

    def check(self) -> None:
        executor = self.executor()
        plan = self.unapplied(executor)
        runs = self.pending_jobs(executor)
        gates: dict[str, Gate] = {}
        for migration in plan:
            lines = self.gate_lines(migration, gates)
            self.console.print(f"pending migration {label(migration)}"
                               + "".join(f"\n    {line}" for line in lines))
        for run in runs:
            self.console.print(f"pending job {one_line(progress_of(run))}")
        if plan or runs:
            raise CommandError(f"{len(plan)} migration(s) and {len(runs)} job(s) pending",
                               returncode=EXIT_PENDING)
        self.console.print("migrate_online --check: nothing pending")

    # -- around the migration -------------------------------------------------------------------

    def wait_for_db(self, timeout: float) -> None:
        error = deploy_checks.wait_for_database(timeout)
        if error:
            raise CommandError(f"database not reachable after {timeout:.0f}s: {error}",
                               returncode=EXIT_TIMEOUT)
        self.console.print("database is up")

    def preflight(self, options) -> None:
        min_age = options["min_age"]
        sessions = deploy_checks.blocking_sessions(min_age)
        for session in sessions:
            self.console.print(f"[yellow]warning:[/] a session would stall DDL: {session.describe()}")
        if sessions and options["session_wait"] > 0:
            self.console.print(f"waiting up to {options['session_wait']:.0f}s for them to end...")
            sessions = deploy_checks.wait_for_quiet(min_age, options["session_wait"])
        if not sessions:
            self.console.print(f"preflight: no session in a transaction older than {min_age:.0f}s")
            return
        message = (
            f"{len(sessions)} session(s) still hold transactions older than {min_age:.0f}s; "
            "DDL on the tables they touched will wait out lock_timeout and retry. Ask their owners "
            "to finish, or end them with SELECT pg_terminate_backend(pid)."
        )
        if options["strict"]:
            raise CommandError(message, returncode=EXIT_UNSAFE)
        self.console.print(f"[yellow]warning:[/] {message}")

    def postflight(self) -> None:
        problems = deploy_checks.schema_problems()
        if problems:
            raise CommandError(
                "the schema was left half-migrated:\n" + "\n".join(
                    f"  {problem.describe()}" for problem in problems
                ), returncode=EXIT_UNSAFE,
            )
        self.console.print("postflight: every index is valid and every constraint validated")
