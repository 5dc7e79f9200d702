"""What the pending migrations will cost, before they run: `migrate_online --plan` (and `--json`).

For every unapplied migration, in the order it would apply: its stage and gates, then its SQL
as `sqlmigrate` renders it (nothing runs), cut into the steps that commit on their own, and for
every statement what it locks (`locks`: mode, table, how long), on how big a table (rows from
`pg_class.reltuples`, size from `pg_total_relation_size`), under which lock_timeout, and about
how long it takes. A lock taken inside a transaction is held until the step commits, so a brief
ACCESS EXCLUSIVE followed in the same step by a scan is held for the scan too: the plan says so.

Then the data jobs it enqueues or waits for, with the rows left and an estimated duration, at
the first rate known of: the pace of the job's latest run here (its latest batches,
`progress.sampled_rate`); the rate the bench measured for one worker (`Job.
measured_rows_per_second`, times the lanes it gets); the site's default. Statement durations
are rough on purpose: the table's size read at a scan rate, times a factor per kind of
statement (`locks.COST`: x1 a scan or a validation, x3 an index build, x5 a rewrite).

Then the whole deploy on a clock (`clock`): the jobs run on the workers while the DDL goes on,
and a gate waits for its own job. Last, the room its writes need, before anyone starts it: the
data jobs' WAL and the database's growth before vacuum, at the bytes a row the bench measured
for each job (`Job.measured_wal_bytes_per_row`, `measured_growth_bytes_per_row`), against the
checkpoints `max_wal_size` asks for, the replication slots that keep WAL on the primary's disk,
and when autovacuum starts on the tables the jobs rewrite (`server`).

The rates are settings: `MIGRATIONS_WORKER["PLAN_ROWS_PER_SECOND"]` (a data job's rows per second
on one worker when nothing better is known, 5,000), `["PLAN_SCAN_BYTES_PER_SECOND"]` (100 MB/s)
and `["PLAN_WORKERS"]` (the workers the jobs share, 2; `--workers`).

This module estimates; what a plan holds and how it reads (text, JSON) is `costs`; which
migrations are pending and their gates is `pending`, as the deploy itself reads it.
"""

from __future__ import annotations

import re

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.migrations.migration import Migration

from .. import conf
from ..exceptions import InvalidInput
from ..job import get_job
from ..lint.render import collect_sql
from ..models import ACTIVE_STATUSES
from ..operations import EnqueueJob
from ..operations.stage import Stage, stage_of
from ..operations.walk import operations_of
from ..runs import control, gates
from ..runs.batching import key_bounds
from ..runs.progress import progress_of, sampled_rate
from ..sqltext import LINE_COMMENT, created_indexes, split_statements
from . import locks
from .costs import (
    JobCost,
    MigrationCost,
    Plan,
    Server,
    Slot,
    StatementCost,
    Step,
    TableCost,
    Vacuum,
    timeout_words,
)
from .pending import gate_lines, gates_of, label, loader_executor, unapplied

TABLE_STATS = """
SELECT c.reltuples::bigint, pg_total_relation_size(c.oid)
FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s))
"""
INDEX_TABLE = """
SELECT t.relname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
WHERE i.indexrelid = to_regclass(quote_ident(%s))
"""
SERVER = """
SELECT pg_size_bytes(current_setting('max_wal_size')),
       current_setting('checkpoint_completion_target')::float,
       CASE WHEN current_setting('max_slot_wal_keep_size') = '-1' THEN NULL
            ELSE pg_size_bytes(current_setting('max_slot_wal_keep_size')) END,
       current_setting('wal_level'),
       current_setting('autovacuum') = 'on',
       current_setting('autovacuum_vacuum_threshold')::bigint,
       current_setting('autovacuum_vacuum_scale_factor')::float
"""
SLOTS = """
SELECT slot_name, slot_type, active,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END
FROM pg_replication_slots ORDER BY slot_name
"""
VACUUM = """
SELECT c.reltuples::bigint, c.reloptions FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s))
"""
_SETTING = re.compile(r"^\s*SET\s+(?P<name>lock_timeout|statement_timeout)\s*(?:=|TO)\s*"
                      r"'?(?P<value>[^';]*)'?", re.I)
_BEGIN = re.compile(r"^\s*(?:BEGIN|START\s+TRANSACTION)\b", re.I)
_COMMIT = re.compile(r"^\s*COMMIT\b", re.I)
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.I)


def rows_per_second() -> float:
    return float(conf.get("PLAN_ROWS_PER_SECOND"))


def scan_bytes_per_second() -> float:
    return float(conf.get("PLAN_SCAN_BYTES_PER_SECOND"))


def default_workers() -> int:
    return int(conf.get("PLAN_WORKERS"))


def build(stage: Stage | None = None, using: str = DEFAULT_DB_ALIAS,
          workers: int | None = None) -> Plan:
    """The plan of every unapplied migration (of `stage`, None: every stage) of the database
    `using`, read only: its SQL rendered on its connection, its tables and jobs read there; its
    deploy walked with `workers` worker lanes (None: the site's PLAN_WORKERS)."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InvalidInput(f"the deploy needs at least one worker to plan for, got {workers}")
    executor = loader_executor(using)
    graph = executor.loader.graph
    pending = unapplied(executor)
    state = executor._create_project_state(with_applied_migrations=True)
    reader = _Catalog(using)
    seen_gates: dict[str, gates.Gate] = {}
    costs, before = [], ""
    for migration in pending:  # every one renders, so the next starts from the right state
        error, before_it = "", state.clone()
        try:
            statements, state = collect_sql(migration, state, executor.connection)
        except Exception as exc:  # the plan says so instead of guessing
            error = f"{type(exc).__name__}: {exc}"
            state = migration.mutate_state(before_it, preserve=True)
            statements = []
        sql = "\n".join(statements)
        steps = _steps(sql, before, reader)
        before += sql + "\n"
        if stage is not None and stage_of(migration) != stage:
            continue
        parents = graph.node_map[migration.app_label, migration.name].parents
        costs.append(MigrationCost(label(migration), str(stage_of(migration)), migration.atomic,
                                   gate_lines(migration, seen_gates, using), steps,
                                   _jobs(migration, seen_gates, reader), error,
                                   parents=sorted(".".join(parent.key) for parent in parents),
                                   gate_limits={g.job_name: g.limit()
                                                for g in gates_of(migration)}))
    found = Plan("all" if stage is None else str(stage), costs, rows_per_second(),
                 scan_bytes_per_second(), using, workers)
    found.server = server(using, [get_job(job.job).table for job in found.jobs().values()
                                  if job.rows])
    return found


def server(using: str, tables: list[str]) -> Server:
    """The settings that decide how the deploy's writes land: checkpoints, the WAL replication
    slots hold back (any database's: WAL is the server's), and when autovacuum starts on the
    tables the jobs rewrite."""
    with connections[using].cursor() as cursor:
        cursor.execute(SERVER)
        wal, target, keep, level, autovacuum, base, factor = cursor.fetchone()
        cursor.execute(SLOTS)
        slots = [Slot(*row) for row in cursor.fetchall()]
        vacuum = []
        for table in dict.fromkeys(tables):
            cursor.execute(VACUUM, [table])
            row = cursor.fetchone()
            if row is None:
                continue  # created by this plan: nothing to rewrite yet
            rows, options = row
            own = dict(option.split("=", 1) for option in options or [])
            enabled = autovacuum and own.get("autovacuum_enabled", "true").lower() not in (
                "false", "off", "0", "no")
            threshold = None if rows < 0 else int(
                int(own.get("autovacuum_vacuum_threshold", base))
                + float(own.get("autovacuum_vacuum_scale_factor", factor)) * rows)
            vacuum.append(Vacuum(table, None if rows < 0 else rows, threshold, enabled))
    return Server(wal, target, keep, level, slots, vacuum)


class _Catalog:
    """Table sizes and index owners, read once each from the database `using`; tables this plan
    creates are new."""

    def __init__(self, using: str):
        self.using = using
        self.stats: dict[str, tuple[int | None, int | None]] = {}
        self.created: set[str] = set()
        self.indexes: dict[str, str] = {}  # index -> table, of indexes this plan builds
        self.gates: dict[str, gates.Gate] = {}
        self.rows: dict[str, tuple[int | None, str]] = {}  # job -> rows counted without a gate

    def gate(self, job: str) -> gates.Gate:
        """Where a job stands (rows left, its run), read once."""
        if job not in self.gates:
            self.gates[job] = gates.decide(job, gates.default_inline_limit(), ahead=True,
                                           using=self.using)
        return self.gates[job]

    def saw(self, code: str, found: locks.StatementLocks) -> None:
        """Remember the tables and indexes a statement creates, for the statements after it."""
        if "create table" in found.kinds:
            self.created |= {lock.table for lock in found.locks
                             if lock.mode == locks.Mode.ACCESS_EXCLUSIVE}
        self.indexes.update(created_indexes(code))

    def table_of_index(self, index: str) -> str:
        with connections[self.using].cursor() as cursor:
            cursor.execute(INDEX_TABLE, [index])
            row = cursor.fetchone()
        return row[0] if row else self.indexes.get(index, index)

    def cost(self, lock: locks.TableLock) -> TableCost:
        table = self.table_of_index(lock.table) if lock.by_index else lock.table
        if table not in self.stats:
            with connections[self.using].cursor() as cursor:
                cursor.execute(TABLE_STATS, [table])
                row = cursor.fetchone()
            self.stats[table] = (None, None) if row is None else (row[0] if row[0] >= 0 else None,
                                                                  row[1])
        rows, size_ = self.stats[table]
        new = size_ is None and table in self.created
        return TableCost(table, lock.mode.sql_name, lock.hold.name.lower(), 0 if new else rows,
                         0 if new else size_, new)


def _steps(sql: str, before: str, reader: _Catalog) -> list[Step]:
    """The statements of one migration, grouped into what commits together: BEGIN ... COMMIT
    (an atomic migration), a lock-safe step (from one `SET lock_timeout` to the next), or a
    statement alone (CONCURRENTLY, outside any transaction; or a plain statement of a
    non-atomic migration, in a transaction of its own)."""
    steps: list[Step] = []
    settings_now = {"lock_timeout": "", "statement_timeout": ""}
    in_block = False
    current: Step | None = None
    for statement in split_statements(sql):
        text = statement.text
        code = locks.code_of(text).strip()
        earlier, before = before, before + text
        if _BEGIN.match(code) or _COMMIT.match(code):
            in_block, current = bool(_BEGIN.match(code)), None
            continue
        if m := _SETTING.match(LINE_COMMENT.sub(" ", text).strip()):
            settings_now[m["name"].lower()] = timeout_words(m["value"])
            if m["name"].lower() == "lock_timeout" and not in_block:
                current = None  # a lock-safe step starts
            continue
        if locks.is_noise(text):
            continue
        concurrent = not in_block and bool(_CONCURRENTLY.search(code))
        alone = concurrent or (not in_block and not settings_now["lock_timeout"])
        if current is None or alone:
            current = Step(len(steps) + 1, transaction=not concurrent)
            steps.append(current)
        current.statements.append(_statement(text, earlier, settings_now, reader))
        if alone:
            current = None
    for step in steps:
        own = [s.seconds for s in step.statements]
        for i, s in enumerate(step.statements):
            later = own[i:] if step.transaction else [s.seconds]
            s.held_seconds = None if any(v is None for v in later) else sum(later)
    return steps


def _statement(text: str, before: str, settings_now: dict, reader: _Catalog) -> StatementCost:
    found = locks.locks_of(text, before)
    reader.saw(locks.code_of(text), found)
    tables = [reader.cost(lock) for lock in found.locks]
    seconds: float | None = 0.0
    if found.hold == locks.Hold.UNKNOWN:
        seconds = None
    for lock, table in zip(found.locks, tables, strict=True):
        if lock.hold.cost and not table.new:
            if table.bytes is None:
                seconds = None
            elif seconds is not None:
                seconds = max(seconds, lock.hold.cost * table.bytes / scan_bytes_per_second())
    one_line = " ".join(LINE_COMMENT.sub(" ", text).split())
    return StatementCost(
        sql=one_line[:200], kinds=list(found.kinds), lock=found.mode.sql_name,
        hold=found.hold.name.lower(), blocks=found.mode.blocks, tables=tables,
        lock_timeout=settings_now["lock_timeout"] or "none", seconds=seconds, held_seconds=seconds)


def _jobs(migration: Migration, seen: dict[str, gates.Gate], reader: _Catalog) -> list[JobCost]:
    wanted = [(gate.job_name, "requires", 1) for gate in gates_of(migration)]
    wanted += [(op.job_name, "enqueues", op.lanes)
               for op in operations_of(migration.operations, EnqueueJob)]
    return [_job(name, role, lanes, seen, reader) for name, role, lanes in wanted]


def _job(name: str, role: str, lanes: int, seen: dict[str, gates.Gate],
         reader: _Catalog) -> JobCost:
    # The gate as a RequireJob showed it (its own inline limit), or else read for the rows only:
    # never stored in `seen`, which a later gate of another limit reads.
    gate = seen.get(name) or reader.gate(name)
    if gate.state == gates.GateState.OPEN:
        return JobCost(name, role, gate.describe(), 0, "finished", None, "finished", 0.0, lanes,
                       "finished", 0.0, 0.0)
    rows, rows_source = _rows(name, gate, reader)
    run = gate.run or (control.latest_run(name, using=reader.using)
                       if gates.engine_tables_exist(using=reader.using) else None)
    status = ""
    if gate.state == gates.GateState.HELD:
        status = "held"
    elif run is not None and run.status in ACTIVE_STATUSES:
        status, lanes = "running", run.workers
    rate, rate_source = None, ""
    if run is not None:  # its pace on all its lanes, as it goes here
        rate = sampled_rate(run) or progress_of(run).rows_per_second
        rate_source = f"the pace of run #{run.pk}'s latest batches" if rate else ""
    if not rate:
        per_worker, rate_source = get_job(name).measured_rows_per_second, "measured by the bench"
        if not per_worker:
            per_worker, rate_source = rows_per_second(), "default rate, no run yet"
        rate = per_worker * lanes
        rate_source += f", {per_worker:,.0f} rows/s a worker" + (f" x {lanes} lanes"
                                                                  if lanes > 1 else "")
    seconds = None if rows is None else rows / rate
    job = get_job(name)
    return JobCost(name, role, gate.describe(), rows, rows_source, rate, rate_source, seconds,
                   lanes, status, _bytes(rows, job.measured_wal_bytes_per_row),
                   _bytes(rows, job.measured_growth_bytes_per_row))


def _bytes(rows: int | None, per_row: float | None) -> float | None:
    if rows == 0:
        return 0.0  # nothing to do writes nothing, measured or not
    return None if rows is None or per_row is None else rows * per_row


def _rows(name: str, gate: gates.Gate, reader: _Catalog) -> tuple[int | None, str]:
    """The rows a job has to do, and where the figure comes from: counted by the job's own
    verification (as its gate counts them), else by its own estimate of the rows a run walks,
    else the table it walks, as analysed. Before the engine's tables exist the gate counts
    nothing, but the job may: each is tried until one works (its tables or columns may come
    with this plan)."""
    if gate.remaining is not None:
        return gate.remaining, "counted now"
    if name not in reader.rows:  # a job enqueued, then required: counted once
        reader.rows[name] = _count(name, reader)
    return reader.rows[name]


def _count(name: str, reader: _Catalog) -> tuple[int | None, str]:
    job = get_job(name)
    for count, source in ((job.count_remaining, "counted now"),
                          (lambda cursor: job.estimate_total(
                              cursor, *key_bounds(cursor, job.table, job.key)),
                           "the job's estimate")):
        try:
            with transaction.atomic(using=reader.using), \
                    connections[reader.using].cursor() as cursor:
                return count(cursor), source
        except DatabaseError:
            continue
    try:
        rows = reader.cost(locks.TableLock(job.table, locks.Mode.NONE, locks.Hold.NONE)).rows
    except DatabaseError:
        return None, "table not found"
    return rows, "the table's estimate" if rows is not None else "table not found"

