"""What each data job writes per row: WAL, and the database's growth before vacuum.

    python -m bench.footprint [--scale medium] [--jobs alerts_uuid ...]

On a fresh copy of each job's template (bench/databases.py), with autovacuum off on every
table of the copy (so nothing reclaims space mid-run), one process runs the job to its end
inline (the RunWorker loop each Celery slice runs). Around the run it reads the server's WAL
position and the database's size, and divides by the rows the job had to do as its own
verification counts them (`count_remaining`, the unit of `measured_rows_per_second` and of the
plan's rows). WAL is the server's: nothing else should run on it meanwhile.

The figures are what `Job.measured_wal_bytes_per_row` and `measured_growth_bytes_per_row`
carry, for `migrate_online --plan` to size a deploy's WAL and disk before it starts. The local
servers run with `full_page_writes` off (bench settings, printed in the report): a production
server also writes a full image of every page at its first change after each checkpoint, up to
8 kB more per page the job dirties between checkpoints.

Writes bench/results/<scale>/footprint.md (and raw/footprint.json).
"""

from __future__ import annotations

import argparse
import json
import time

from psycopg import sql

from bench.common import APP_SAMPLER, RESULTS, connect, server_settings, settings_words
from seed.dataset import SIZES

COPY = "bench_footprint_copy"
# Each job on the template that stops right before it (bench/databases.py).
JOBS = (("legacy_columns", "legacy"), ("ticker_dedup", "dedup"), ("alerts_uuid", "alerts"))

USER_TABLES = "SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2"


def position() -> tuple[str, int]:
    """The server's WAL position and the copy's size, from a session of its own."""
    with connect("postgres", APP_SAMPLER) as conn:
        return conn.execute("SELECT pg_current_wal_lsn()::text, pg_database_size(%s)",
                            [COPY]).fetchone()


def wal_between(before: str, after: str) -> int:
    with connect("postgres", APP_SAMPLER) as conn:
        return int(conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after, before]).fetchone()[0])


def measure(job_name: str, template: str, *, autovacuum: bool = False) -> dict:
    """The job alone on a fresh copy of `template`, inline, to its end: its rows to do, time,
    WAL and growth. Autovacuum is off on the copy's tables unless `autovacuum` (the growth is
    then what is left after it reused space)."""
    # (after bench.profile_engine has set Django up, for the engine's runner on the copy)
    from django.db import connection

    from bench.databases import create, drop
    from bench.profile_engine import use_database, work_to_end
    from migrations_worker.job import get_job
    from migrations_worker.models import RunStatus
    from migrations_worker.runs import control, runner
    from migrations_worker.runs.states import transition

    create(COPY, template)
    try:
        with connect(COPY, APP_SAMPLER) as conn:
            for schema, table in conn.execute(USER_TABLES).fetchall() if not autovacuum else []:
                conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)")
                             .format(sql.Identifier(schema, table)))
        use_database(COPY)
        job = get_job(job_name)
        with connection.cursor() as cursor:
            rows = job.count_remaining(cursor)
        run = control.create_run(job_name, actor="footprint")
        transition(run.pk, RunStatus.RUNNING, using="default", actor="footprint",
                   message="footprint inline")
        use_database(COPY)  # nothing of the setup's own sessions in the figures
        lsn, size_before = position()
        started = time.perf_counter()
        outcome = work_to_end(runner.RunWorker(run.pk, name="footprint"))
        seconds = time.perf_counter() - started
        use_database("postgres")
        if outcome.status != RunStatus.FINISHED:
            raise RuntimeError(f"{job_name} ended {outcome.status}")
        lsn_after, size_after = position()
        wal = wal_between(lsn, lsn_after)
        growth = size_after - size_before
    finally:
        use_database("postgres")
        drop(COPY)
    return {"job": job_name, "rows": rows, "seconds": seconds, "wal_bytes": wal,
            "growth_bytes": growth, "wal_per_row": wal / rows if rows else None,
            "growth_per_row": growth / rows if rows else None}


def report(scale: str, entries: list[dict], settings: dict[str, str], started: str,
           command: str = "python -m bench.footprint") -> str:
    lines = [
        f"# What each data job writes per row, {scale} scale ({started})",
        "",
        f"`{command}`: each job alone, inline, on a fresh copy "
        "of its template with autovacuum off; WAL from the server's WAL position around the "
        "run, growth from the database's size; per row of what the job's verification counted "
        "before it started. The jobs carry these as `measured_wal_bytes_per_row` and "
        "`measured_growth_bytes_per_row`, and `migrate_online --plan` sizes a deploy with them.",
        "",
        f"Server settings: {settings_words(settings)}.",
        "",
        "| job | rows to do | run | WAL | WAL a row | growth | growth a row |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for e in entries:
        lines.append(
            f"| {e['job']} | {e['rows']:,} | {e['seconds']:.1f} s | {e['wal_bytes'] / 2**20:,.1f} MB "
            f"| {e['wal_per_row']:,.0f} B | {e['growth_bytes'] / 2**20:,.1f} MB "
            f"| {e['growth_per_row']:,.0f} B |")
    lines += [
        "",
        "With `full_page_writes` on (every production server), add up to one 8 kB page image "
        "for each page a job first changes after a checkpoint.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=list(SIZES), default="medium")
    parser.add_argument("--jobs", nargs="+", choices=[job for job, _ in JOBS],
                        default=[job for job, _ in JOBS],
                        help="only these (alerts_uuid alone needs only the alerts template, which "
                             "at xlarge spares a backfill of the text columns to build the others)")
    args = parser.parse_args()
    from bench.profile_engine import ensure_templates

    templates = ensure_templates(args.scale, rebuild=False, log=print,
                                 alerts_only=args.jobs == ["alerts_uuid"])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    entries = []
    for job_name, kind in [(job, kind) for job, kind in JOBS if job in args.jobs]:
        print(f"{job_name} on a copy of {getattr(templates, kind)}", flush=True)
        entries.append(measure(job_name, getattr(templates, kind)))
        print(f"  {entries[-1]}", flush=True)
    with connect("postgres", APP_SAMPLER) as conn:
        settings = server_settings(conn)
    out = RESULTS / args.scale
    (out / "raw").mkdir(parents=True, exist_ok=True)
    command = f"python -m bench.footprint --scale {args.scale}" + (
        f" --jobs {' '.join(args.jobs)}" if len(args.jobs) < len(JOBS) else "")
    (out / "raw" / "footprint.json").write_text(json.dumps(
        {"scale": args.scale, "started": started, "settings": settings, "jobs": entries,
         "command": command}, indent=1))
    (out / "footprint.md").write_text(report(args.scale, entries, settings, started, command))
    print((out / "footprint.md").read_text())


if __name__ == "__main__":
    main()
