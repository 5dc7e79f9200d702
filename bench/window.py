"""The maintenance window: the same release applied offline, as a team would with the application
stopped, to set the online deploy's time against (issue 24).

One session, no lock or statement timeout, no live load (the application is stopped, so every
second of the window is a second nothing can write). Every pending migration runs in the order
`migrate` plans it (all stages), from its SQL as `sqlmigrate` renders it (lint/render.py's
`collect_sql`), with the online scaffolding taken out: `CONCURRENTLY` removed (a plain
`CREATE INDEX` / `DROP INDEX`, which blocks writers: nobody is writing), the `SET lock_timeout`
and `SET statement_timeout` lines dropped. Each migration is then recorded in django_migrations,
inside its transaction when it has one, as `migrate` records it.

What the render cannot write as SQL is handled here, explicitly, and anything else it cannot
write stops the window (rather than being skipped unseen):

- `EnqueueJob`: nothing to enqueue; the job's set-based SQL (bench/single_sql.py) runs once on
  the same session just before the first migration whose gate requires it (`RequireJob`), where
  its preconditions hold, and what the job's own query says is left is read right after it.
- `RunPython` in `axes.0007` (django-axes deleting duplicate access attempts before a unique
  constraint): its set-based equivalent, `PYTHON_ONLY` below, runs first inside that migration's
  transaction, where Django runs it (it is the migration's first operation). Its table was
  created empty earlier in the same plan, so it deletes nothing, but it is not assumed to.

The SQL is rendered before the clock starts (a team writes its script beforehand), by a
subprocess with Django set up on the window's own copy (`python -m bench.window --plan FILE`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from assets.jobs.legacy_columns import LegacyColumns
from assets.jobs.ticker_dedup import TickerDedup
from bench import single_sql
from bench.common import APP_CONTENDER, APP_PREPARE, ROOT, connect, django_env, scalar
from bench.databases import Templates, create, drop
from investments.jobs.alerts_uuid import REMAINING as ALERTS_REMAINING

CANNOT = "THIS OPERATION CANNOT BE WRITTEN AS SQL"
SET_TIMEOUT = re.compile(r"^SET\s+(lock_timeout|statement_timeout)\b", re.IGNORECASE)
CONCURRENT_INDEX = re.compile(r"\b(CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX)\s+CONCURRENTLY\b",
                              re.IGNORECASE)
CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)

JOBS = {"alerts_uuid": single_sql.alerts_uuid, "legacy_columns": single_sql.legacy_columns,
        "ticker_dedup": single_sql.ticker_dedup}

# Each Python-only operation of the release, by migration, as set-based SQL run where it runs.
PYTHON_ONLY = {
    "axes.0007_alter_accessattempt_unique_together": [
        "DELETE FROM axes_accessattempt a USING axes_accessattempt b "
        "WHERE a.username IS NOT DISTINCT FROM b.username "
        "AND a.ip_address IS NOT DISTINCT FROM b.ip_address "
        "AND a.user_agent IS NOT DISTINCT FROM b.user_agent AND a.id > b.id",
    ],
}


class WindowError(RuntimeError):
    pass


# -- the plan, rendered (needs Django: runs in the subprocess) ---------------------------------


def render_plan(using: str = "default") -> list[dict]:
    """The unapplied migrations in the order `migrate` applies them, each with its rendered SQL
    (rendered from the project state just before it), its gates, the jobs it enqueues and the
    positions of its Python-only operations."""
    from django.db import connections
    from django.db.migrations.operations import RunPython

    from migrations_worker.deploy.pending import enqueues_of, gates_of, label, loader_executor
    from migrations_worker.lint.render import collect_sql

    executor = loader_executor(using)
    state = executor._create_project_state(with_applied_migrations=True)
    plan = []
    for migration, _backwards in executor.migration_plan(executor.loader.graph.leaf_nodes()):
        statements, state = collect_sql(migration, state, connections[using])
        plan.append({
            "label": label(migration), "app": migration.app_label, "name": migration.name,
            "statements": statements, "gates": [gate.job_name for gate in gates_of(migration)],
            "enqueues": enqueues_of(migration), "replaces": [list(r) for r in migration.replaces],
            "python_only": [n for n, op in enumerate(migration.operations)
                            if isinstance(op, RunPython)],
        })
    return plan


def rendered_plan(database: str, path: Path) -> list[dict]:
    """`render_plan` on `database`, by a subprocess with Django set up on it."""
    done = subprocess.run([sys.executable, "-m", "bench.window", "--plan", str(path)], cwd=ROOT,
                          env=django_env(database, application=APP_PREPARE), capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise WindowError(f"rendering the plan of {database} failed:\n{done.stderr[-3000:]}")
    return json.loads(path.read_text())


# -- the offline transform ---------------------------------------------------------------------


def is_comment(statement: str) -> bool:
    return all(line.strip().startswith("--") for line in statement.strip().splitlines())


def offline(statements: list[str]) -> list[str]:
    """The rendered statements with the online scaffolding taken out: comments and the timeout
    `SET`s dropped, `CONCURRENTLY` removed from index builds and drops; the rest as rendered."""
    kept = []
    for statement in statements:
        text = statement.strip()
        if not text or is_comment(text) or SET_TIMEOUT.match(text):
            continue
        text = CONCURRENT_INDEX.sub(r"\1", text)
        if CONCURRENTLY.search(text):
            raise WindowError(f"a concurrent statement the window cannot turn offline: {text[:200]}")
        kept.append(text)
    return kept


def steps(plan: list[dict]) -> list[dict]:
    """What the window runs, in order: `job` steps (each job's set-based SQL, once, before the
    first migration gated on it) and `migration` steps (offline SQL, then the record)."""
    done: set[str] = set()
    out: list[dict] = []
    for migration in plan:
        unwritable = sum(CANNOT in s for s in migration["statements"])
        handled = len(migration["gates"]) + len(migration["enqueues"]) + len(migration["python_only"])
        if unwritable != handled:
            raise WindowError(f"{migration['label']}: {unwritable} operation(s) rendered as "
                              f"'{CANNOT}', {handled} of them handled by the window")
        for job in migration["gates"]:
            if job not in done:
                if job not in JOBS:
                    raise WindowError(f"{migration['label']} requires {job}: no set-based version")
                out.append({"kind": "job", "name": job})
                done.add(job)
        statements = offline(migration["statements"])
        if migration["python_only"]:
            if migration["label"] not in PYTHON_ONLY or migration["python_only"] != [0]:
                raise WindowError(f"{migration['label']}: a Python-only operation the window has "
                                  "no set-based SQL for (add it to PYTHON_ONLY)")
            at = 1 if statements[:1] == ["BEGIN;"] else 0
            statements[at:at] = PYTHON_ONLY[migration["label"]]
        out.append({"kind": "migration", "name": migration["label"], "statements": statements,
                    "records": [*migration["replaces"], [migration["app"], migration["name"]]]})
    return out


# -- running it --------------------------------------------------------------------------------

RECORD = "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())"


def run_migration(conn: psycopg.Connection, step: dict) -> None:
    statements = step["statements"]
    atomic = statements[:1] == ["BEGIN;"] and statements[-1:] == ["COMMIT;"]
    for statement in statements[:-1] if atomic else statements:
        conn.execute(statement)
    for app, name in step["records"]:
        conn.execute(RECORD, [app, name])
    if atomic:
        conn.execute("COMMIT;")


def remaining(conn: psycopg.Connection, job: str) -> int:
    """What the job's own query says is left (as `contenders.verify` reads it)."""
    with conn.cursor() as cursor:
        if job == "alerts_uuid":
            cursor.execute(ALERTS_REMAINING)
            return cursor.fetchone()[0]
        return (LegacyColumns() if job == "legacy_columns" else TickerDedup()).count_remaining(cursor)


def apply(conn: psycopg.Connection, plan: list[dict], log) -> tuple[float, list[dict]]:
    """Every step on the one session; the whole window's seconds (the jobs' leftover checks
    excluded: a team's script would not run them) and each step's seconds."""
    conn.execute("SET lock_timeout = 0")
    conn.execute("SET statement_timeout = 0")
    timings: list[dict] = []
    whole = 0.0
    for step in plan:
        started = time.monotonic()
        if step["kind"] == "job":
            detail = JOBS[step["name"]](conn)
            took = time.monotonic() - started
            timings.append({"kind": "job", "name": step["name"], "seconds": took,
                            "rows": detail["rows"], "remaining": remaining(conn, step["name"])})
        else:
            run_migration(conn, step)
            took = time.monotonic() - started
            timings.append({"kind": "migration", "name": step["name"], "seconds": took})
        whole += took
        log(f"  window: {step['kind']} {step['name']} {took:.2f}s")
    return whole, timings


# -- the schema, described for comparison ------------------------------------------------------

CATALOGUE = {
    "column": """
        SELECT format('%s.%s %s%s%s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                      CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                      CASE WHEN d.adbin IS NOT NULL
                           THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
                      CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped""",
    "index": """
        SELECT pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'""",
    "constraint": """
        SELECT format('%s %s %s%s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid),
                      CASE WHEN c.convalidated THEN '' ELSE ' NOT VALID' END)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public'""",
    "trigger": """
        SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal""",
    "function": """
        SELECT format('%s(%s)', p.proname, pg_get_function_identity_arguments(p.oid))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'""",
}


def schema(database: str) -> dict[str, list[str]]:
    """The public schema's columns (type, nullability, default), indexes, constraints (each by
    its definition), triggers and functions: what two ways of applying the release must share."""
    with connect(database, APP_PREPARE) as conn:
        return {kind: sorted(row[0] for row in conn.execute(query).fetchall())
                for kind, query in CATALOGUE.items()}


def differences(window: dict[str, list[str]], online: dict[str, list[str]]) -> list[str]:
    lines = []
    for kind in sorted(set(window) | set(online)):
        mine, theirs = set(window.get(kind, [])), set(online.get(kind, []))
        lines += [f"{kind} only in the window: {item}" for item in sorted(mine - theirs)]
        lines += [f"{kind} only online: {item}" for item in sorted(theirs - mine)]
    return lines


# -- the contender -----------------------------------------------------------------------------


def measure_window(templates: Templates, args, logs: Path, log, database: str | None = None) -> dict:
    """The release applied offline on a copy of `templates.seed` (named `database`, by default
    `bench_run_<scale>_window`); see the module docstring."""
    scale = templates.scale
    database = database or f"bench_run_{scale}_window"
    log(f"maintenance window ({scale}): copy of {templates.seed} -> {database}")
    create(database, templates.seed)
    try:
        plan = steps(rendered_plan(database, logs / f"window_{scale}_plan.json"))
        with connect(database, APP_CONTENDER) as conn:
            seconds, timings = apply(conn, plan, log)
        described = schema(database)
        alerts = scalar(database, "SELECT count(*) FROM investments_alert")
    finally:
        if not getattr(args, "keep", False):
            drop(database)
    jobs = [t for t in timings if t["kind"] == "job"]
    migrations = [t for t in timings if t["kind"] == "migration"]
    log(f"maintenance window ({scale}): {seconds:.1f}s, {len(migrations)} migrations, jobs "
        + ", ".join(f"{j['name']} {j['seconds']:.1f}s ({j['remaining']} left)" for j in jobs))
    return {"scale": scale, "alerts": alerts, "seconds": seconds, "jobs": jobs,
            "migrations": migrations, "steps": timings,
            "remaining": sum(j["remaining"] for j in jobs),
            "schema": described}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the window's plan (Django set up).")
    parser.add_argument("--plan", type=Path, required=True, help="write the plan here as JSON")
    args = parser.parse_args(argv)
    import django

    django.setup()
    args.plan.write_text(json.dumps(render_plan()))


if __name__ == "__main__":
    main()
