"""`manage.py backfill`: the operator's console for data jobs.

Exit codes are those of every operator command (docs/troubleshooting.md, "Exit codes"): 2 bad input (unknown
job, bad number, no such quarantined key), 3 conflict (already running, wrong state for the
action, an undo the schema refuses), 4 the run failed or was cancelled, 5 timed out waiting, 6
the broker is unreachable.

Every action takes `--database NAME`: one target (a declared database, `default` unless told),
where the job's rows and its runs' progress live; JSON output names it. Every action takes
`--json`: its result as JSON, a run in the one shape of every run printed (`ops.run_json`, as
`/ops/runs.json` has it); and `--verbosity 0` (the result only) and `--no-color`
(`management.base`).

`backfill undo NAME` puts back what NAME did: it records what to put back (`--group`, or all)
and runs NAME's undo job, a job like any other (`migrations_worker.undo`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from migrations_worker import conf
from migrations_worker.checks import require_supported_database
from migrations_worker.exceptions import InvalidInput, InvalidTransition, JobFailed
from migrations_worker.job import UndoJob, get_job, job_classes, undo_job_for
from migrations_worker.management.arguments import (
    add_database,
    add_output_flags,
    positive_int,
    seconds,
)
from migrations_worker.management.base import EngineCommand, shown
from migrations_worker.models import JobRun, QuarantinedKey, RunStatus
from migrations_worker.ops.run_json import run_payload, run_payloads
from migrations_worker.runs import control, dispatch, drive, runner, undo
from migrations_worker.runs.controls import CONTROLS
from migrations_worker.runs.progress import hold_text, one_line, progress_of
from migrations_worker.targets import database_flag


def quarantined_row(q: QuarantinedKey) -> dict:
    return {"key": q.key, "state": q.resolution, "attempts": q.attempts, "sqlstate": q.sqlstate,
            "error": q.error, "at": q.created_at.isoformat(),
            "resolved_by": q.resolved_by or None}


OPTION_FLAG = ("--option",)
OPTION_ARGUMENT = {"action": "append", "default": [], "metavar": "KEY=VALUE",
                   "help": "a tuning option for a new run, e.g. pause_seconds=0.1 (repeatable)"}


def tuning_options(items: list[str]) -> dict:
    """`--option KEY=VALUE` items as a run's options (values are JSON: numbers)."""
    tuning = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--option takes KEY=VALUE, got {item!r}")
        try:
            tuning[key] = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInput(f"--option {key}: {value!r} is not a number") from None
    return tuning


class Command(EngineCommand):
    help = "Start, steer and watch the online migration's data jobs."
    # The database is checked by require_supported_database (exit 2, like migrate_online): an
    # operator steering a job must not be stopped by an unrelated warning.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sub.add_parser("list", help="the registered jobs and their latest run")
        status = sub.add_parser("status", help="progress of the latest run of each job, or of NAME")
        status.add_argument("name", nargs="?")
        status.add_argument("--watch", action="store_true", help="refresh until the runs end")
        start = sub.add_parser("start", help="start a run on the Celery workers")
        start.add_argument("name")
        start.add_argument("--batch-size", type=positive_int)
        start.add_argument("--workers", type=positive_int, default=1, help="parallel lanes")
        start.add_argument(*OPTION_FLAG, **OPTION_ARGUMENT)
        for action in CONTROLS:
            p = sub.add_parser(action, help=f"{action} the job's active run")
            p.add_argument("name")
        run = sub.add_parser("run", help="work the job in the foreground until it is finished")
        run.add_argument("name")
        run.add_argument("--batch-size", type=positive_int)
        run.add_argument(*OPTION_FLAG, **OPTION_ARGUMENT)
        back = sub.add_parser(
            "undo", help="put back what the job did, from what it kept (a run of its undo job)")
        back.add_argument("name")
        back.add_argument("--group", action="append", default=[], metavar="GROUP",
                          help="only this group of the job's work (repeatable; default: all)")
        back.add_argument("--inline", action="store_true",
                          help="work the undo here in the foreground, as `run` does")
        back.add_argument("--batch-size", type=positive_int)
        back.add_argument("--workers", type=positive_int, default=1, help="parallel lanes")
        back.add_argument(*OPTION_FLAG, **OPTION_ARGUMENT)
        keys = sub.add_parser("quarantine", help="the keys the latest run of NAME set aside; "
                              "--accept lets it finish without them")
        keys.add_argument("name")
        keys.add_argument("--accept", action="store_true",
                          help="accept the open keys (or only --key ...): the run may finish")
        keys.add_argument("--key", type=int, action="append", dest="keys", metavar="KEY",
                          help="with --accept: only this key (repeatable)")
        wait = sub.add_parser("wait", help="wait until the named jobs' runs are finished")
        wait.add_argument("names", nargs="+", metavar="NAME")
        wait.add_argument("--timeout", type=seconds, default=None, help="seconds; exit 5 after")
        for action in sub.choices.values():
            add_database(action)
            add_output_flags(action)
            action.add_argument("--json", action="store_true",
                                help="the result as JSON (a run as /ops/runs.json shows it)")

    def handle(self, *args, **options) -> None:
        self.actor = "cli"
        self.as_json = options["json"]
        action = options["action"]
        self.using = conf.require_target(options["database"])
        require_supported_database(self.using)
        if action in CONTROLS:
            return self.do_control(action, options["name"])
        getattr(self, f"do_{action}")(options)

    def result(self, value: Any, text: str) -> None:
        """The action's result: `value` as JSON under --json, else `text`."""
        if self.as_json:
            self.print_json(value)
        else:
            self.console.print(text)

    # -- reading ----------------------------------------------------------------------------

    def do_list(self, options) -> None:
        jobs = [(c, control.latest_run(c.name, using=self.using)) for c in job_classes()]
        if self.as_json:
            return self.print_json([
                {"job": c.name, "table": c.table, "description": c.description,
                 "database": self.using, "latest_run": run_payload(latest) if latest else None}
                for c, latest in jobs])
        table = Table("job", "table", "latest run", "description", box=None)
        for job_class, latest in jobs:
            table.add_row(
                shown(job_class.name), shown(job_class.table),
                f"#{latest.pk} {latest.status}" if latest else "-", shown(job_class.description),
            )
        self.console.print(table)

    def _runs(self, name: str | None) -> list[JobRun]:
        if name is not None:  # an explicit name, even an empty one, must be a job's
            get_job(name)
            run = control.latest_run(name, using=self.using)
            if run is None:
                raise InvalidInput(f"job {name} has never run{self._on()}")
            return [run]
        return [r for r in (control.latest_run(c.name, using=self.using) for c in job_classes())
                if r]

    def _on(self) -> str:
        """Where, when it is not the project's own database: ' on database far'."""
        return "" if self.using == DEFAULT_DB_ALIAS else f" on database {self.using}"

    def _flag(self) -> str:
        return database_flag(self.using)

    def _status_table(self, runs: list[JobRun]) -> Table:
        table = Table("run", "job", "status", "progress", "rows/s", "ETA", "batch", "hold / error")
        for run in runs:
            run.refresh_from_db()
            p = progress_of(run)
            table.add_row(
                f"#{p.run_id}", p.job, p.status,
                f"{p.percent:5.1f}% {p.rows_done:,}/{p.estimated_total:,}",
                f"{p.rows_per_second:,.0f}" if p.rows_per_second else "-",
                p.eta, f"{p.batch_size:,}",
                shown(hold_text(p) or p.error[:80]),
            )
        return table

    def do_status(self, options) -> None:
        runs = self._runs(options["name"])
        if self.as_json:
            return self.print_json(run_payloads(runs, self.using))
        if not options["watch"]:
            self.console.print(self._status_table(runs))
            for run in runs:
                if run.report:
                    self.console.print(f"{run.job_name} #{run.pk} report: {run.report}",
                                       markup=False)
                self._findings(run)
            return
        with Live(self._status_table(runs), console=self.console, refresh_per_second=2) as live:
            while not all(r.status in RunStatus.terminal() for r in runs):
                time.sleep(1)
                live.update(self._status_table(runs))

    # -- steering ---------------------------------------------------------------------------

    def do_start(self, options) -> None:
        run = dispatch.start(
            options["name"], batch_size=options["batch_size"], workers=options["workers"],
            options=tuning_options(options["option"]), actor=self.actor, using=self.using,
        )
        self._started(run)

    def _started(self, run: JobRun) -> None:
        self.result(run_payload(run), f"started {run.job_name} run #{run.pk}{self._on()} with "
                                      f"{run.workers} worker lane(s)")
        if not self.as_json:
            self.say(f"watch it: python manage.py backfill status {run.job_name} --watch"
                     f"{self._flag()}")

    def _active(self, name: str) -> JobRun:
        get_job(name)
        run = control.active_run(name, using=self.using)
        if run is None:
            latest = control.latest_run(name, using=self.using)
            state = f"its latest run #{latest.pk} is {latest.status}" if latest else "it never ran"
            raise InvalidTransition(f"{name} has no active run{self._on()}: {state}")
        return run

    def do_control(self, action: str, name: str) -> None:
        ctl = CONTROLS[action]
        run = ctl.apply(self._active(name), actor=self.actor, using=self.using)
        self.result(run_payload(run), f"{run.job_name} #{run.pk}: {ctl.done} (now {run.status})")

    def do_undo(self, options) -> None:
        """Record what to put back, then run the undo job (on the workers, or here)."""
        name = options["name"]
        tuning = tuning_options(options["option"])
        undo_job = undo_job_for(name).name
        control.validated(undo_job, batch_size=options["batch_size"], workers=options["workers"],
                          options=tuning)
        if not options["inline"]:
            dispatch.ensure_broker()  # before anything is recorded
        requested = undo.request(name, options["group"], using=self.using)
        if not requested.selected:
            return self.result(
                {"job": name, "undo_job": undo_job, "database": self.using, "selected": 0,
                 "run": None},
                f"nothing to undo: no work of {name} to put back"
                + (" in the named group(s)" if options["group"] else ""))
        if not self.as_json:
            self.say(f"{name}: {requested.selected:,} to put back by {undo_job}")
        if options["inline"]:
            run = self._work_inline(undo_job, options)
        else:
            run = dispatch.start(undo_job, batch_size=options["batch_size"],
                                 workers=options["workers"], options=tuning, actor=self.actor,
                                 using=self.using)
        if self.as_json:
            self.print_json({"job": name, "undo_job": undo_job, "database": self.using,
                             "selected": requested.selected, "run": run_payload(run)})
        elif not options["inline"]:
            self._started(run)
        self._failed_unless_finished(run, options["inline"])

    def do_run(self, options) -> None:
        """Work the job here until it is finished: joins an active run or starts one."""
        run = self._work_inline(options["name"], options)
        if self.as_json:
            self.print_json(run_payload(run))
        self._failed_unless_finished(run)

    def _failed_unless_finished(self, run: JobRun, inline: bool = True) -> None:
        if inline and run.status != RunStatus.FINISHED:
            raise JobFailed(f"{run.job_name} run #{run.pk} ended {run.status}")

    def _work_inline(self, name: str, options) -> JobRun:
        """The job worked here to its end, a bar while it runs (not under --json or
        --verbosity 0), its result line and findings after (not under --json)."""
        get_job(name)
        work = {"actor": self.actor, "worker_name": f"{runner.worker_name()}/inline",
                "message": "run inline", "batch_size": options["batch_size"],
                "options": tuning_options(options["option"]), "resume_paused": True,
                "using": self.using}
        if self.as_json or self.verbosity < 1:
            run = drive.run_inline(name, **work)
        else:
            run = self._with_bar(name, work)
        if not self.as_json:
            self.console.print(one_line(progress_of(run)), markup=False)
            if run.report:
                self.console.print(f"report: {run.report}", markup=False)
            self._findings(run)
        return run

    def _with_bar(self, name: str, work: dict) -> JobRun:
        columns = (
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(name, total=1, rate="")

            def show(r: JobRun) -> None:
                p = progress_of(r)
                rate = f"{p.rows_per_second:,.0f} rows/s" if p.rows_per_second else ""
                bar.update(task, completed=r.rows_done, total=max(r.estimated_total, r.rows_done, 1),
                           rate=rate)

            return drive.run_inline(name, on_batch=show, **work)

    def _findings(self, run: JobRun) -> None:
        """What an undo left for the operator (rows changed since, kept as they are)."""
        job = get_job(run.job_name)
        with connections[self.using].cursor() as cursor:
            lines = job.findings(cursor, run.created_at) if isinstance(job, UndoJob) else []
        for line in lines:
            self.console.print(f"  {line}", markup=False)

    def do_quarantine(self, options) -> None:
        (run,) = self._runs(options["name"])
        if options["keys"] and not options["accept"]:
            raise InvalidInput("--key chooses keys to accept: use it with --accept")
        if options["accept"]:
            run = control.accept_quarantined(run, actor=self.actor, keys=options["keys"],
                                             using=self.using)
        rows = list(run.quarantined.order_by("key", "id"))
        if self.as_json:
            self.print_json({"database": self.using, "run": run_payload(run),
                             "keys": [quarantined_row(q) for q in rows]})
        else:
            table = Table("key", "state", "attempts", "SQLSTATE", "at", "error", box=None)
            for q in rows:
                table.add_row(str(q.key), q.resolution, str(q.attempts), q.sqlstate or "-",
                              f"{q.created_at:%Y-%m-%d %H:%M:%S}", shown(q.error[:120]))
            self.console.print(table if rows else f"{run.job_name} #{run.pk}: no key quarantined")
            self.console.print(one_line(progress_of(run)), markup=False)
        if options["accept"] and run.status == RunStatus.FAILED:
            # The keys stay accepted; a script that accepted and moved on must still hear that
            # the run did not finish (keys left open, or it failed for another reason too).
            raise JobFailed(f"{run.job_name} run #{run.pk} is still failed: {run.error}")

    def do_wait(self, options) -> None:
        names = options["names"]
        for name in names:
            get_job(name)
        missing = [name for name in names if control.latest_run(name, using=self.using) is None]
        if missing:
            raise InvalidInput(f"never started{self._on()}: {', '.join(missing)}")
        runs = drive.wait_for(names, timeout=options["timeout"], using=self.using)
        if self.as_json:
            return self.print_json(run_payloads(runs.values(), self.using))
        for run in runs.values():
            self.console.print(one_line(progress_of(run)), markup=False)
