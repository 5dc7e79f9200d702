"""`manage.py demo_report`: what the online migration did, whether it is verified, how long each
phase took, and what the application felt meanwhile.

    manage.py demo_report [--phase "NAME=SECONDS"]... [--deploy-started EPOCH] [--load FILE]...
                          [--json]

Every figure about the data is read from the database (the jobs' run rows, the archives, the
catalog, django_migrations), so the report can be checked against it and rerun at any time.
Wall-clock phases that only the caller saw (seeding, the deploy stages) come in as `--phase`;
each release's traffic (its latencies, errors, the longest lock wait it saw, and every text and
row it wrote) as the JSON `demo_load` wrote (`--load`, once per release): the report checks that
every one of those writes is still there (`seed.releases.verify_writes`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from migrations_worker.deploy.pending import gates_of, label
from migrations_worker.models import JobRun, RunStatus
from migrations_worker.runs.progress import format_duration
from seed.releases import verify_writes

RELEASE_TITLES = {"previous": "The previous release (legacy models)",
                  "new": "The new release (today's models)"}

SOFT_DELETE_TABLES = (
    "assets_country", "assets_sector", "assets_industry", "assets_currency",
    "portfolios_benchmark", "investments_newsarticle", "investments_alert",
)
INDEXES = (
    "idx_portfolios_holding_portfolio_asset",
    "idx_assets_priceshistoric_asset_timestamp",
    "idx_investments_watchlist_user_asset",
)
# job -> (what the fix is, [(report counter, how the summary names it)])
FIXES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "alerts_uuid": ("Alert keyed by UUID", [
        ("alerts_backfilled", "alerts backfilled"),
        ("references_backfilled", "trigger references backfilled"),
    ]),
    "ticker_dedup": ("Duplicate (ticker, exchange) assets merged", [
        ("groups_merged", "groups merged"),
        ("assets_removed", "duplicate assets removed"),
        ("rows_repointed", "rows re-pointed"),
        ("rows_merged_away", "colliding rows merged away"),
        ("holdings_merged", "holdings summed into one"),
    ]),
    "legacy_columns": ("Deprecated sector/industry text archived", [
        ("values_archived", "values archived"),
        ("values_matched", "values matched"),
        ("values_unmatched", "values unmatched"),
        ("values_ambiguous", "values ambiguous"),
        ("assets_linked", "assets linked"),
    ]),
}


def one(cursor, query: str, params=None):
    cursor.execute(query, params)
    row = cursor.fetchone()
    return row[0] if row else None


def scalar_or_none(query: str, params=None):
    """A figure from a table that may not exist (yet, or any more): None then."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            return one(cursor, query, params)
    except DatabaseError:
        return None


def schema_checks() -> list[tuple[str, bool, str]]:
    """(check, passed, detail) for each of the five fixes and the catalog's health."""
    checks = []
    with connection.cursor() as cursor:
        valid = one(cursor, "SELECT convalidated FROM pg_constraint "
                            "WHERE conname = 'assets_asset_ticker_exchange_unique'")
        checks.append(("UNIQUE (ticker, exchange)", valid is True,
                       "valid" if valid else "missing or not validated"))
        for index in INDEXES:
            state = one(cursor, "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
                                "ON c.oid = i.indexrelid WHERE c.relname = %s", [index])
            checks.append((f"index {index}", state is True,
                           {True: "valid", False: "INVALID", None: "missing"}[state]))
        cursor.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'is_deleted' "
            "AND table_name = ANY(%s)", [list(SOFT_DELETE_TABLES)])
        with_soft_delete = {r[0] for r in cursor.fetchall()}
        missing = sorted(set(SOFT_DELETE_TABLES) - with_soft_delete)
        checks.append(("soft delete on the seven models", not missing,
                       f"missing on {', '.join(missing)}" if missing else "all seven"))
        key = one(cursor, "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_index i "
                          "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                          "WHERE i.indrelid = 'investments_alert'::regclass AND i.indisprimary")
        checks.append(("Alert keyed by uuid", key == "uuid", f"primary key type {key}"))
        cursor.execute("SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = 'assets_asset' AND column_name IN ('sector', 'industry')")
        left = [r[0] for r in cursor.fetchall()]
        checks.append(("deprecated sector/industry dropped", not left,
                       f"still there: {', '.join(left)}" if left else "dropped"))
        invalid = one(cursor, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        unvalidated = one(cursor, "SELECT count(*) FROM pg_constraint WHERE NOT convalidated")
        checks.append(("no invalid index, no unvalidated constraint",
                       invalid == 0 and unvalidated == 0,
                       f"{invalid} invalid index(es), {unvalidated} unvalidated constraint(s)"))
    return checks


def took(seconds: float | None) -> str:
    """Seconds with a decimal below a minute: the small demo's phases take a second or two."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)


def equal_check(name: str, reported: int | None, held: int | None, what: str) -> tuple[str, bool, str]:
    passed = reported is not None and reported == held
    return (name, passed, f"report {reported if reported is not None else '-'}, "
                          f"{what} {held if held is not None else '-'}")


def data_checks(runs: dict[str, JobRun]) -> list[tuple[str, bool, str]]:
    """Each job's own verification, and its report cross-checked against what the tables hold."""
    checks = []
    for job, run in runs.items():
        verified = run.events.filter(to_status=RunStatus.FINISHED).order_by("-id").first()
        checks.append((f"{job}, its own check", run.status == RunStatus.FINISHED,
                       verified.message if verified else f"run #{run.pk} is {run.status}"))
    report = {job: run.report or {} for job, run in runs.items()}
    if "alerts_uuid" in runs:
        without = scalar_or_none("SELECT count(*) FROM investments_alert WHERE uuid IS NULL")
        stale = scalar_or_none(
            "SELECT count(*) FROM investments_alerttrigger t JOIN investments_alert a "
            "ON a.id = t.alert_id WHERE t.alert_uuid IS DISTINCT FROM a.uuid")
        checks.append(("every alert has a uuid, every trigger its alert's", without == 0 and stale == 0,
                       f"{without} alert(s) without, {stale} trigger(s) out of step"))
    if "ticker_dedup" in runs:
        duplicates = scalar_or_none(
            "SELECT count(*) FROM (SELECT 1 FROM assets_asset GROUP BY ticker, exchange_id "
            "HAVING count(*) > 1) d")
        checks.append(("no duplicate (ticker, exchange) left", duplicates == 0,
                       f"{duplicates} duplicate group(s)"))
        merge = report["ticker_dedup"]
        checks.append(equal_check(
            "groups merged = groups in the merge archive", merge.get("groups_merged"),
            scalar_or_none("SELECT count(DISTINCT group_id) FROM assets_assetmergearchive "
                           "WHERE table_name = 'assets_asset'"), "archive"))
        checks.append(equal_check(
            "assets removed = before-images of removed assets", merge.get("assets_removed"),
            scalar_or_none("SELECT count(*) FROM assets_assetmergearchive "
                           "WHERE table_name = 'assets_asset' AND action = 'removed'"), "archive"))
    if "legacy_columns" in runs:
        legacy = report["legacy_columns"]
        checks.append(equal_check(
            "values archived = the job's rows in the text archive", legacy.get("values_archived"),
            scalar_or_none("SELECT count(*) FROM assets_assetlegacytext WHERE source = 'job'"),
            "archive"))
        checks.append(equal_check(
            "values unmatched = the job's unmatched rows in the archive",
            legacy.get("values_unmatched"),
            scalar_or_none("SELECT count(*) FROM assets_assetlegacytext "
                           "WHERE outcome = 'unmatched' AND source = 'job'"), "archive"))
    return checks


def gate_waits(since: datetime | None) -> list[dict]:
    """How long the deploy step stood at each gate: from the migration applied just before the
    gated one (or the deploy step's start, if later) to the gated one's own `applied` time."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    applied = list(MigrationRecorder(connection).migration_qs.order_by("applied", "id")
                   .values_list("app", "name", "applied"))
    waits = []
    previous = None
    for app, name, at in applied:
        migration = loader.disk_migrations.get((app, name))
        gates = gates_of(migration) if migration is not None else []
        if gates and previous is not None:
            start = max(previous, since) if since else previous
            waits.append({
                "migration": label(migration), "jobs": [g.job_name for g in gates],
                "seconds": max(0.0, (at - start).total_seconds()),
                "this_deploy": since is None or at >= since,
            })
        previous = at
    return waits


class Command(BaseCommand):
    help = "Summarise the online migration: what each fix did, verification, timings, lock waits."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--phase", action="append", default=[], metavar="NAME=SECONDS",
                            help="a wall-clock phase the caller timed (repeatable)")
        parser.add_argument("--deploy-started", type=float, default=None, metavar="EPOCH",
                            help="when this deploy step started (Unix time), for the gate waits")
        parser.add_argument("--load", action="append", default=[], metavar="FILE",
                            help="the JSON `demo_load` wrote, once per release")

    def handle(self, *args, **options) -> None:
        phases = []
        for item in options["phase"]:
            name, sep, seconds = item.rpartition("=")
            try:
                phases.append((name, float(seconds)))
            except ValueError:
                raise CommandError(f"--phase takes NAME=SECONDS, got {item!r}") from None
            if not sep or not name:
                raise CommandError(f"--phase takes NAME=SECONDS, got {item!r}")
        loads = [self.read_load(Path(path)) for path in options["load"]]
        since = (datetime.fromtimestamp(options["deploy_started"], tz=UTC)
                 if options["deploy_started"] else None)
        runs: dict[str, JobRun] = {}
        for run in JobRun.objects.order_by("job_name", "-id"):
            runs.setdefault(run.job_name, run)
        checks = data_checks(runs) + schema_checks() + [
            (f"every write of the {load['release']} release kept", not load["kept"]["missing"],
             kept_detail(load["kept"])) for load in loads if "kept" in load]
        waits = gate_waits(since)
        jobs = {name: {"run": r.pk, "status": r.status, "rows": r.rows_done,
                       "batches": r.batches_done, "report": r.report,
                       "seconds": (r.finished_at - r.started_at).total_seconds()
                       if r.finished_at and r.started_at else None}
                for name, r in runs.items()}
        if options["json"]:
            self.stdout.write(json.dumps({
                "jobs": jobs,
                "checks": [{"check": c, "passed": ok, "detail": d} for c, ok, d in checks],
                "phases": dict(phases),
                "gate_waits": waits,
                "loads": [{k: v for k, v in load.items() if k not in ("texts", "rows", "links",
                                                                    "holdings")} for load in loads],
            }))
            return
        console = Console(file=self.stdout, highlight=False, soft_wrap=True)
        if not console.is_terminal:
            console.width = 120  # a log or a pipe: long migration names stay on one line
        self.print_fixes(console, runs, jobs)
        self.print_checks(console, checks)
        self.print_timings(console, phases, waits, jobs)
        for load in loads:
            self.print_load(console, load)
        if loads:
            self.print_captured(console, loads)

    def print_fixes(self, console: Console, runs: dict[str, JobRun], jobs: dict) -> None:
        console.print("[bold]What each fix did[/]")
        for job, run in runs.items():
            title, counters = FIXES.get(job, (job, []))
            console.print(f"  [bold]{title}[/] ({job}, run #{run.pk} {run.status}, "
                          f"{run.batches_done:,} batches in {took(jobs[job]['seconds'])})")
            table = Table(box=None, show_header=False, padding=(0, 2), pad_edge=False)
            table.add_column(justify="left")
            table.add_column(justify="right")
            report = dict(run.report or {})
            for key, name in counters:
                if key in report:
                    table.add_row(f"    {name}", f"{report.pop(key):,}")
            for key, value in sorted(report.items()):
                table.add_row(f"    {key.replace('_', ' ')}", f"{value:,}")
            console.print(table)
        console.print("  [bold]Soft delete[/] on seven models, [bold]three composite indexes[/]: "
                      "schema changes only, see the checks below")

    def print_checks(self, console: Console, checks: list[tuple[str, bool, str]]) -> None:
        passed = sum(ok for _, ok, _ in checks)
        colour = "green" if passed == len(checks) else "red"
        console.print(f"\n[bold]Verification[/]: [{colour}]{passed} of {len(checks)} passed[/]")
        for check, ok, detail in checks:
            mark = "[green]ok  [/]" if ok else "[red]FAIL[/]"
            console.print(f"  {mark} {escape(str(check))}: {escape(str(detail))}")  # the database's words

    def print_timings(self, console: Console, phases, waits: list[dict], jobs: dict) -> None:
        console.print("\n[bold]How long each phase took[/]")
        table = Table(box=None, show_header=False, padding=(0, 2), pad_edge=False)
        table.add_column()
        table.add_column(justify="right")
        for name, seconds in phases:
            table.add_row(f"  {name}", took(seconds))
        for wait in waits:
            note = "" if wait["this_deploy"] else " (earlier run)"
            table.add_row(f"    gate {wait['migration']} ({', '.join(wait['jobs'])})",
                          took(wait["seconds"]) + note)
        for job, figures in jobs.items():
            table.add_row(f"  job {job} ran", took(figures["seconds"]))
        console.print(table)

    @staticmethod
    def read_load(path: Path) -> dict:
        if not path.exists():
            return {"missing": str(path), "release": path.stem}
        load = json.loads(path.read_text())
        with connection.cursor() as cursor:
            load["kept"] = verify_writes(cursor, load)
        return load

    def print_load(self, console: Console, load: dict) -> None:
        title = RELEASE_TITLES.get(load["release"], load["release"])
        console.print(f"\n[bold]{title} meanwhile[/]")
        if "missing" in load:
            console.print(f"  no load result at {load['missing']}")
            return
        colour = "green" if load["errors"] == 0 else "red"
        console.print(
            f"  statements {load['statements']:,}, [{colour}]errors {load['errors']}[/], "
            f"p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
            f"max {load['max_ms']:.1f} ms ({load['slowest_operation'] or '-'})"
        )
        for error in load.get("first_errors", []):
            console.print(f"    [red]{escape(str(error))}[/]")
        console.print(f"  its writes: {kept_detail(load['kept'])}")
        wait = load.get("lock_wait") or {}
        if not wait:
            return
        seconds = wait.get("seconds", 0.0)
        if seconds:
            what = wait.get("relation") or wait.get("locktype", "")
            console.print(
                f"  longest lock wait: {seconds:.2f} s ({wait.get('mode', '')} on {what}, by "
                f"{wait.get('application') or 'a session'}: {wait.get('query', '')[:100]})"
            )
        else:
            console.print("  longest lock wait: 0.00 s (no statement was seen waiting for a lock)")
        console.print(f"    (pg_locks sampled every {wait.get('interval_seconds', 0)} s, "
                      f"{wait.get('samples', 0):,} samples; the application's own slowest "
                      f"statement above bounds its waits)")

    @staticmethod
    def print_captured(console: Console, loads: list[dict]) -> None:
        """What the compatibility triggers caught of the releases' writes during the deploy."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM assets_assetmergearchive WHERE action = 'redirected'")
            redirected = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM assets_assetlegacytext WHERE source = 'write'")
            captured = cursor.fetchone()[0]
        console.print(f"\n[bold]Captured during the deploy[/]: {captured:,} archive row(s) of "
                      "sector/industry values the previous release wrote, replaced or deleted (by the "
                      f"capture trigger, besides the job's); {redirected:,} write(s) naming a "
                      "merged-away asset, landed on its survivor (archived as `redirected`)")


def kept_detail(kept: dict) -> str:
    missing = kept["missing"]
    superseded = kept["texts_superseded"]
    return (f"{kept['texts_archived']:,} text(s) archived"
            + (f" ({superseded:,} more the release itself replaced before the capture trigger "
               "(assets.0008) existed: not required)" if superseded else "")
            + f", {kept['rows_present']:,} row(s) on the "
            f"asset they named or its survivor ({kept['rows_replaced_and_archived']:,} replaced "
            f"under the merge rules, archived), {kept['links_present']:,} news link(s) present; "
            + (f"{len(missing)} missing, e.g. {missing[0]}" if missing else "nothing missing"))
