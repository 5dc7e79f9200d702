"""`manage.py demo_report`: what the online migration did, and whether the schema is now right.

Every figure is read from the database (the jobs' run rows and the catalog), so the report can
be checked against it and rerun at any time.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.db import connection
from rich.console import Console
from rich.table import Table

from migrations_worker.models import JobRun
from migrations_worker.progress import format_duration

SOFT_DELETE_TABLES = (
    "assets_country", "assets_sector", "assets_industry", "assets_currency",
    "portfolios_benchmark", "investments_newsarticle", "investments_alert",
)
INDEXES = (
    "idx_portfolios_holding_portfolio_asset",
    "idx_assets_priceshistoric_asset_timestamp",
    "idx_investments_watchlist_user_asset",
)


def one(cursor, query: str, params=None):
    cursor.execute(query, params)
    row = cursor.fetchone()
    return row[0] if row else None


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


class Command(BaseCommand):
    help = "Summarise the online migration: jobs, their reports, and the final schema."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:
        runs = {}
        for run in JobRun.objects.order_by("job_name", "-id"):
            runs.setdefault(run.job_name, run)
        checks = schema_checks()
        if options["json"]:
            self.stdout.write(json.dumps({
                "jobs": {name: {"status": r.status, "rows": r.rows_done, "report": r.report,
                                "seconds": (r.finished_at - r.started_at).total_seconds()
                                if r.finished_at and r.started_at else None}
                         for name, r in runs.items()},
                "checks": [{"check": c, "passed": ok, "detail": d} for c, ok, d in checks],
            }))
            return
        console = Console(file=self.stdout, highlight=False, soft_wrap=True)
        jobs = Table("job", "status", "rows", "batches", "took", "what it did", title="Data jobs")
        for name, run in runs.items():
            took = (run.finished_at - run.started_at).total_seconds() \
                if run.finished_at and run.started_at else None
            report = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(run.report.items()))
            jobs.add_row(name, run.status, f"{run.rows_done:,}", f"{run.batches_done:,}",
                         format_duration(took), report)
        console.print(jobs)
        schema = Table("check", "result", "detail", title="Final schema")
        for check, passed, detail in checks:
            schema.add_row(check, "[green]ok[/]" if passed else "[red]FAIL[/]", detail)
        console.print(schema)
