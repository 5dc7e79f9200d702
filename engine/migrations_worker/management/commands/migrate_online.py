"""`manage.py migrate_online`: the deploy step's `migrate`, gated by the data jobs and staged.

    migrate_online [--stage pre]    apply the pre-deploy migrations the gates allow, stop cleanly
                                    at the gates; post-deploy migrations are left for later
    migrate_online --stage post     after the rollout: the post-deploy migrations (refused while a
                                    pre-deploy one is unapplied)
    migrate_online --stage all      everything in order: a new or development database, where no
                                    previous release runs
    migrate_online --wait [--timeout S]
                                    ... and wait for each gate's job with live progress, going on
                                    past each gate as its job finishes
    migrate_online --require-complete
                                    ... and exit 8 (pending) instead of 0 when it stopped at a
                                    gate: for pipelines that must not go on while the stage has work
    migrate_online --check [--json] change nothing; exit 8 if migrations or jobs are pending (of
                                    every stage, or of --stage); each job's run in the shape of
                                    every run printed (`ops.run_json`)
    migrate_online --plan [--workers N] [--json]
                                    print the unapplied migrations with each one's stage and gate,
                                    every statement's lock, table (rows, size) and rough duration,
                                    each data job's estimated duration, and the whole deploy's
                                    with N workers running the jobs (`plan`, `clock`)
    migrate_online --wait-for-db S [--json]
                                    wait until the database accepts connections
    migrate_online --preflight [--min-age S] [--session-wait S] [--strict] [--json]
                                    warn about (or wait out) sessions that would stall DDL
    migrate_online --postflight [--json]
                                    fail if any index is INVALID or any constraint unvalidated

`--verbosity 0` prints the result only (no progress bars, no hints), `--no-color` (or NO_COLOR)
no colour; text from the database is printed as it is, never read as markup
(`management.base`).

Every form takes `--database NAME`: the target (a declared database, `default` unless told) whose
migrations, jobs, deploy lock and sessions it works on; nothing of another database is touched,
and each target has its own deploy lock, so deploys of two targets run side by side.

Why `pre` is the default: the step a pipeline runs before (or while) rolling out a release must
never break the release still serving traffic, and a forgotten flag must fail safe: without
`--stage` nothing that needs the new release everywhere runs. The contract stage is a separate,
explicit step after the rollout (`deploy/deploy.sh post`).

The work is done by `deploy.executor` (the apply loop and its gates), `deploy.pending` and
`deploy.plan` (what is pending, read only) and `deploy.lock` (one deploy at a time); this
command parses, calls, and renders what the executor reports (`deploy.events`, `Screen`). Exit
codes are those of every operator command (docs/troubleshooting.md, "Exit codes"): a deploy
stopped cleanly at a gate whose job is still running exits 0, or 8 with `--require-complete`.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from migrations_worker import conf, pg
from migrations_worker.checks import require_supported_database
from migrations_worker.deploy import checks as deploy_checks
from migrations_worker.deploy import costs, pending, plan
from migrations_worker.deploy import lock as deploy_lock
from migrations_worker.deploy.events import (
    Applied,
    Applying,
    Event,
    Note,
    Pass,
    StoppedAtGates,
    Waiting,
)
from migrations_worker.deploy.executor import OnlineExecutor
from migrations_worker.exceptions import InvalidInput, Pending, TimedOut, UnsafeDatabase
from migrations_worker.management.arguments import (
    add_database,
    positive_int,
    positive_seconds,
    seconds,
)
from migrations_worker.management.base import EngineCommand, shown
from migrations_worker.models import JobRun
from migrations_worker.operations import Stage
from migrations_worker.operations.stage import stage_of
from migrations_worker.ops.run_json import run_payloads
from migrations_worker.runs.gates import Gate
from migrations_worker.runs.progress import hold_text, one_line, progress_of
from migrations_worker.targets import database_flag

STAGES = {"pre": Stage.PRE, "post": Stage.POST, "all": None}


class Screen:
    """What the deploy reports, as the operator reads it: a line per migration applied, the
    gates a pass stopped at, live bars (or a line every ten seconds in a log) while waiting."""

    def __init__(self, stdout: OutputWrapper, style: Style, console: Console, verbosity: int,
                 using: str):
        self.stdout, self.style, self.console, self.verbosity = stdout, style, console, verbosity
        self.flag = database_flag(using)  # what the commands it suggests need to reach it
        self.bar: Progress | None = None
        self.tasks: dict[str, int] = {}
        self.last_line = 0.0

    def __call__(self, event: Event) -> None:
        match event:
            case Applying(migration) if self.verbosity >= 1:
                self.stdout.write(f"  applying {migration}...", ending="")
                self.stdout.flush()
            case Applied() if self.verbosity >= 1:
                self.stdout.write(self.style.SUCCESS(" OK"))
            case Note(text, warning):
                self.note(text, warning)
            case StoppedAtGates(result):
                self.stopped_at_gates(result)
            case Waiting(runs):
                self.waiting(runs)

    def note(self, text: str, warning: bool = False) -> None:
        """What the deploy says: its result, a warning (text from the database, printed as is)."""
        self.console.print(f"[yellow]warning:[/] {shown(text)}" if warning else shown(text))

    def hint(self, text: str) -> None:
        """A command to run next: not under --verbosity 0."""
        if self.verbosity >= 1:
            self.console.print(text, markup=False)

    def stopped_at_gates(self, result: Pass) -> None:
        if result.applied:
            self.console.print(f"applied {len(result.applied)} migration(s)")
        self.console.print(f"[bold]pending:[/] {len(result.gated)} migration(s) wait for data jobs"
                           + (f", {len(result.held)} more depend on them" if result.held else ""))
        for migration, job in result.gated.items():
            self.console.print(f"  {migration} waits for job {job}\n    {result.progress[job]}",
                               markup=False)
        for job in result.jobs:
            self.hint(f"  watch it:  python manage.py backfill status {job} --watch{self.flag}")
            self.hint(f"  finish it in the foreground:  python manage.py backfill run {job}"
                      f"{self.flag}")
        for migration, parent in result.held.items():
            self.console.print(f"  {migration} (needs {parent})", markup=False)
        self.hint(f"  then:  python manage.py migrate_online{self.flag}   (or --wait to wait here)")

    def waiting(self, runs: dict[str, JobRun | None]) -> None:
        if self.verbosity < 1:  # no bars, no progress lines: the result comes when it ends
            return
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                TextColumn("{task.fields[detail]}"), console=self.console)
            self.bar.start()
        for job, run in runs.items():
            if job not in self.tasks:
                self.tasks[job] = self.bar.add_task(job, total=100, detail="")
            if run is not None:
                p = progress_of(run)
                self.bar.update(self.tasks[job], completed=p.percent, detail=shown(
                    f"{p.status}, {p.rows_done:,}/~{p.estimated_total:,} rows, ETA {p.eta}"
                    + (f", {hold_text(p)}" if p.hold_reason else "")))
        if not self.console.is_terminal and time.monotonic() - self.last_line >= 10:
            self.last_line = time.monotonic()
            for run in runs.values():
                if run is not None:
                    self.stdout.write(f"  waiting: {one_line(progress_of(run))}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class Command(EngineCommand):
    help = "Apply migrations online: enqueue data jobs, stop (or wait) at the gates they guard."
    requires_system_checks = []  # `migrate` runs its own; a deploy must not fail on a warning

    def add_arguments(self, parser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true",
                          help="change nothing; exit 8 if migrations or jobs are pending")
        mode.add_argument("--plan", action="store_true",
                          help="print the unapplied migrations: gates, every statement's lock, "
                               "table size and duration, each data job's estimated duration")
        mode.add_argument("--wait", action="store_true",
                          help="wait at each gate for its job, with live progress")
        mode.add_argument("--preflight", action="store_true",
                          help="report sessions that would stall DDL, then exit")
        mode.add_argument("--postflight", action="store_true",
                          help="fail if an index is INVALID or a constraint unvalidated")
        mode.add_argument("--wait-for-db", type=seconds, metavar="SECONDS",
                          help="wait until the database accepts connections, then exit")
        parser.add_argument("--stage", choices=STAGES, default=None,
                            help="pre: before the rollout (the default when applying); post: after "
                                 "it; all: every migration in order (no previous release running). "
                                 "With --plan / --check: only that stage (default: every stage)")
        parser.add_argument("--require-complete", action="store_true",
                            help="exit 8 (pending) if the stage stopped at a gate with its job "
                                 "unfinished, instead of 0: for pipelines that must not go on")
        parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                            help="with --plan: the Celery workers that run the deploy's jobs "
                                 "(default: MIGRATIONS_WORKER['PLAN_WORKERS'], 2)")
        parser.add_argument("--json", action="store_true",
                            help="with --plan, --check, --preflight, --postflight or --wait-for-db: "
                                 "the answer as JSON, for pipelines")
        add_database(parser)
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
        parser.add_argument("--lock-wait", type=seconds, default=deploy_lock.DEFAULT_WAIT_SECONDS,
                            metavar="SECONDS",
                            help="wait this long for another migrate_online to end (default "
                                 f"{deploy_lock.DEFAULT_WAIT_SECONDS:.0f}s) before refusing to start")

    def handle(self, *args, **options) -> None:
        self.using = conf.require_target(options["database"])
        self.screen = Screen(self.stdout, self.style, self.console, self.verbosity, self.using)
        self.as_json = options["json"]
        if options["wait_for_db"] is not None:
            return self.wait_for_db(options["wait_for_db"])
        if options["preflight"]:
            return self.preflight(options)
        if options["postflight"]:
            return self.postflight()
        listed = STAGES[options["stage"] or "all"]
        if options["json"] and not (options["plan"] or options["check"]):
            raise InvalidInput("--json goes with --plan, --check, --preflight, --postflight or "
                               "--wait-for-db; applying a stage prints its progress as text "
                               "(then `--check --json` says what is left)")
        if options["require_complete"] and (options["plan"] or options["check"]):
            raise InvalidInput("--require-complete goes with applying a stage, not --plan or --check "
                               "(--check exits 8 whenever something is pending)")
        if options["workers"] is not None and not options["plan"]:
            raise InvalidInput("--workers goes with --plan: the deploy runs its jobs on the "
                               "Celery workers there are")
        if options["plan"]:
            return self.show_plan(listed, as_json=options["json"], workers=options["workers"])
        if options["check"]:
            return self.check(listed, as_json=options["json"])
        require_supported_database(self.using)
        try:
            OnlineExecutor(self.screen, verbosity=self.verbosity, using=self.using).deploy(
                stage=STAGES[options["stage"] or "pre"], wait=options["wait"],
                timeout=options["timeout"], poll=options["poll"], lock_wait=options["lock_wait"],
                require_complete=options["require_complete"])
        finally:
            self.screen.close()

    # -- read-only views ----------------------------------------------------------------------

    def show_plan(self, stage: Stage | None, as_json: bool = False,
                  workers: int | None = None) -> None:
        found = plan.build(stage, self.using, workers)
        if as_json:
            self.stdout.write(json.dumps(found.as_dict(), indent=2))
            return
        if not found.migrations:
            self.console.print("migrate_online: no unapplied migrations"
                               + (f" in the {stage}-deploy stage" if stage else ""))
            return
        self.console.print(f"{len(found.migrations)} unapplied migration(s), in order:")
        for line in costs.text_lines(found):
            self.console.print(line, markup=False)

    def check(self, stage: Stage | None, as_json: bool = False) -> None:
        executor = pending.loader_executor(self.using)
        migrations = [m for m in pending.unapplied(executor) if stage in (None, stage_of(m))]
        runs = pending.pending_runs(executor, stage)
        seen: dict[str, Gate] = {}
        found = [(migration, pending.gate_lines(migration, seen, self.using))
                 for migration in migrations]
        if as_json:
            self.stdout.write(json.dumps({
                "database": self.using, "stage": "all" if stage is None else str(stage),
                "migrations": [{"migration": pending.label(m), "stage": str(stage_of(m)),
                                "gates": lines} for m, lines in found],
                "jobs": run_payloads(runs, self.using),
            }, indent=2))
        else:
            for migration, lines in found:
                self.console.print(f"pending {stage_of(migration)}-deploy migration "
                                   f"{pending.label(migration)}"
                                   + "".join(f"\n    {line}" for line in lines))
            for run in runs:
                self.console.print(f"pending job {one_line(progress_of(run))}", markup=False)
        if migrations or runs:
            raise Pending(f"{len(migrations)} migration(s) and {len(runs)} job(s) pending")
        if not as_json:
            self.console.print("migrate_online --check: nothing pending")

    # -- around the migration -------------------------------------------------------------------

    def wait_for_db(self, timeout: float) -> None:
        error = pg.wait_for_database(timeout, database=self.using)
        if error:
            raise TimedOut(f"database not reachable after {timeout:.0f}s: {error}")
        if self.as_json:
            return self.print_json({"database": self.using, "up": True})
        self.console.print("database is up")

    def preflight(self, options) -> None:
        min_age = options["min_age"]
        sessions = deploy_checks.blocking_sessions(min_age, self.using)
        for session in [] if self.as_json else sessions:
            self.screen.note(f"a session would stall DDL: {session.describe()}", warning=True)
        if sessions and options["session_wait"] > 0:
            if not self.as_json:
                self.say(f"waiting up to {options['session_wait']:.0f}s for them to end...")
            sessions = deploy_checks.wait_for_quiet(min_age, options["session_wait"], self.using)
        if self.as_json:
            self.print_json({"database": self.using, "min_age_seconds": min_age,
                             "sessions": [vars(session) for session in sessions]})
        if not sessions:
            if self.as_json:
                return
            self.console.print(f"preflight: no session in a transaction older than {min_age:.0f}s")
            return
        message = (
            f"{len(sessions)} session(s) still hold transactions older than {min_age:.0f}s; "
            "DDL on the tables they touched will wait out lock_timeout and retry. Ask their owners "
            "to finish, or end them with SELECT pg_terminate_backend(pid)."
        )
        if options["strict"]:
            raise UnsafeDatabase(message)
        if not self.as_json:
            self.screen.note(message, warning=True)

    def postflight(self) -> None:
        problems = deploy_checks.schema_problems(self.using)
        if self.as_json:
            self.print_json({"database": self.using,
                             "problems": [{**vars(p), "fix": p.describe()} for p in problems]})
        if problems:
            raise UnsafeDatabase("the schema was left half-migrated:\n" + "\n".join(
                f"  {problem.describe()}" for problem in problems))
        if not self.as_json:
            self.console.print("postflight: every index is valid and every constraint validated")
