"""What the pending migrations will cost, before they run: `migrate_online --plan` (and `--json`).

For every unapplied migration, in the order it would apply: its stage and gates, then its SQL
as `sqlmigrate` renders it (nothing runs), cut into the steps that commit on their own, and for
every statement what it locks (`locks`: mode, table, how long), on how big a table (rows from
`pg_class.reltuples`, size from `pg_total_relation_size`), under which lock_timeout, and about
how long it takes. A lock taken inside a transaction is held until the step commits, so a brief
ACCESS EXCLUSIVE followed in the same step by a scan is held for the scan too: the plan says so.

Then the data jobs it enqueues or waits for, with the rows left and an estimated duration: from
the pace of the job's latest run when there is one (its latest batches, `progress.sampled_rate`),
otherwise the rows at the site's default rate. Statement durations are rough on purpose: the
table's size read at a scan rate, times a factor per kind (`locks.Hold.cost`).

The rates are settings: `MIGRATIONS_WORKER["PLAN_ROWS_PER_SECOND"]` (a data job's rows per second
before it has run, 5,000) and `["PLAN_SCAN_BYTES_PER_SECOND"]` (100 MB/s).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from django.db import DatabaseError, connection
from django.db.migrations.migration import Migration
from django.utils import timezone

from .. import conf
from ..job import get_job
from ..lint.render import collect_sql
from ..operations.stage import Stage, stage_of
from ..runs import control, gates
from ..runs.progress import format_duration, progress_of, sampled_rate
from ..sqltext import _QUALIFIED, _name, split_statements
from . import locks
from .executor import OnlineExecutor, enqueues_of, gates_of, label

TABLE_STATS = """
SELECT c.reltuples::bigint, pg_total_relation_size(c.oid)
FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s))
"""
INDEX_TABLE = """
SELECT t.relname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
WHERE i.indexrelid = to_regclass(quote_ident(%s))
"""
_SETTING = re.compile(r"^\s*SET\s+(?P<name>lock_timeout|statement_timeout)\s*(?:=|TO)\s*"
                      r"'?(?P<value>[^';]*)'?", re.I)
_COMMENT = re.compile(r"--[^\n]*")
_BEGIN = re.compile(r"^\s*(?:BEGIN|START\s+TRANSACTION)\b", re.I)
_COMMIT = re.compile(r"^\s*COMMIT\b", re.I)
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.I)
_CREATE_INDEX = re.compile(rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
                           rf"(?P<index>{_QUALIFIED})\s+ON\s+(?:ONLY\s+)?(?P<table>{_QUALIFIED})", re.I)


def rows_per_second() -> float:
    return float(conf.get("PLAN_ROWS_PER_SECOND"))


def scan_bytes_per_second() -> float:
    return float(conf.get("PLAN_SCAN_BYTES_PER_SECOND"))


# -- what the plan holds ----------------------------------------------------------------------------


@dataclass
class TableCost:
    table: str
    lock: str  # PostgreSQL's name of the mode
    hold: str  # locks.Hold, lower case
    rows: int | None  # None: never analysed, or the table does not exist yet
    bytes: int | None
    new: bool = False  # created earlier in this plan: empty, no running code knows it

    def describe(self) -> str:
        if self.new:
            return f"{self.table} (created by this plan)"
        if self.bytes is None:
            return f"{self.table} (not found)"
        rows = f"{self.rows:,} rows" if self.rows is not None else "rows unknown, never analysed"
        return f"{self.table} ({rows}, {size(self.bytes)})"


@dataclass
class StatementCost:
    sql: str  # its first 200 characters, on one line
    kinds: list[str]
    lock: str  # the strongest mode it takes
    hold: str
    blocks: str
    tables: list[TableCost]
    lock_timeout: str
    seconds: float | None  # its own estimated duration
    held_seconds: float | None  # how long its locks are held: to the end of its step


@dataclass
class Step:
    number: int
    transaction: bool  # its statements commit together (a lock is held until the end)
    statements: list[StatementCost] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return total(s.seconds for s in self.statements)


def total(durations) -> float | None:
    """The sum of estimated durations, or None when any is unknown."""
    values = list(durations)
    return None if any(v is None for v in values) else sum(values)


@dataclass
class JobCost:
    job: str
    role: str  # "enqueues" or "requires"
    gate: str
    rows: int | None
    rows_source: str
    rate: float | None  # rows per second
    rate_source: str
    seconds: float | None

    def describe(self) -> str:
        rows = "rows unknown" if self.rows is None else f"{self.rows:,} row(s) to do"
        if self.seconds == 0 and self.rows == 0:
            return f"job {self.job} ({self.role}): nothing to do ({self.gate})"
        rate = f"{self.rate:,.0f} rows/s" if self.rate else "an unknown rate"
        return (f"job {self.job} ({self.role}): {rows} ({self.rows_source}), {approx(self.seconds)} "
                f"at {rate} ({self.rate_source})")


@dataclass
class MigrationCost:
    migration: str
    stage: str
    atomic: bool
    gates: list[str]
    steps: list[Step]
    jobs: list[JobCost]
    error: str = ""  # the SQL could not be rendered

    @property
    def seconds(self) -> float | None:
        return total(s.seconds for s in self.steps)


@dataclass
class Plan:
    stage: str
    migrations: list[MigrationCost]
    rows_per_second: float
    scan_bytes_per_second: float

    def jobs(self) -> dict[str, JobCost]:
        """Each job once (a job enqueued by one migration and required by a later one)."""
        found: dict[str, JobCost] = {}
        for migration in self.migrations:
            for job in migration.jobs:
                found.setdefault(job.job, job)
        return found

    def as_dict(self) -> dict:
        statements = [s for m in self.migrations for step in m.steps for s in step.statements]
        ddl = [s.seconds for s in statements]
        jobs = self.jobs()
        return {
            "generated_at": timezone.now().isoformat(),
            "stage": self.stage,
            "assumptions": {"rows_per_second": self.rows_per_second,
                            "scan_bytes_per_second": self.scan_bytes_per_second},
            "migrations": [{**asdict(m), "seconds": m.seconds,
                            "steps": [{**asdict(step), "seconds": step.seconds} for step in m.steps]}
                           for m in self.migrations],
            "jobs": {name: asdict(job) for name, job in jobs.items()},
            "totals": {
                "migrations": len(self.migrations),
                "statements": len(statements),
                "ddl_seconds": None if any(v is None for v in ddl) else sum(ddl),
                "job_seconds": {name: job.seconds for name, job in jobs.items()},
                "strongest_lock": max((locks.Mode[s.lock.replace(" ", "_")] for s in statements),
                                      default=locks.Mode.NONE).sql_name,
            },
        }


# -- building it --------------------------------------------------------------------------------------


def build(stage: Stage | None = None) -> Plan:
    """The plan of every unapplied migration (of `stage`, None: every stage), read only."""
    online = OnlineExecutor(_Silent())
    executor = online.loader_executor()
    pending = online.unapplied(executor)
    state = executor._create_project_state(with_applied_migrations=True)
    reader = _Catalog()
    seen_gates: dict[str, gates.Gate] = {}
    costs, before = [], ""
    for migration in pending:  # every one renders, so the next starts from the right state
        error, before_it = "", state.clone()
        try:
            statements, state = collect_sql(migration, state, connection)
        except Exception as exc:  # the plan says so instead of guessing
            error = f"{type(exc).__name__}: {exc}"
            state = migration.mutate_state(before_it, preserve=True)
            statements = []
        sql = "\n".join(statements)
        steps = _steps(sql, before, reader)
        before += sql + "\n"
        if stage is not None and stage_of(migration) != stage:
            continue
        gate_lines = online.gate_lines(migration, seen_gates)
        costs.append(MigrationCost(label(migration), str(stage_of(migration)), migration.atomic,
                                   gate_lines, steps, _jobs(migration, seen_gates, reader),
                                   error))
    return Plan("all" if stage is None else str(stage), costs, rows_per_second(),
                scan_bytes_per_second())


class _Silent:
    """The executor's reporter, for reading the plan: nothing to report."""

    def migration(self, action, migration=None, fake=False) -> None: ...
    def note(self, text, warning=False) -> None: ...
    def stopped_at_gates(self, result) -> None: ...
    def waiting(self, runs) -> None: ...


class _Catalog:
    """Table sizes and index owners, read once each; tables this plan creates are new."""

    def __init__(self):
        self.stats: dict[str, tuple[int | None, int | None]] = {}
        self.created: set[str] = set()
        self.indexes: dict[str, str] = {}  # index -> table, of indexes this plan builds
        self.gates: dict[str, gates.Gate] = {}

    def gate(self, job: str) -> gates.Gate:
        """Where a job stands (rows left, its run), read once."""
        if job not in self.gates:
            self.gates[job] = gates.decide(job, gates.default_inline_limit(), ahead=True)
        return self.gates[job]

    def saw(self, code: str, found: locks.StatementLocks) -> None:
        """Remember the tables and indexes a statement creates, for the statements after it."""
        if "create table" in found.kinds:
            self.created |= {lock.table for lock in found.locks
                             if lock.mode == locks.Mode.ACCESS_EXCLUSIVE}
        for m in _CREATE_INDEX.finditer(code):
            self.indexes[_name(m["index"])] = _name(m["table"])

    def table_of_index(self, index: str) -> str:
        with connection.cursor() as cursor:
            cursor.execute(INDEX_TABLE, [index])
            row = cursor.fetchone()
        return row[0] if row else self.indexes.get(index, index)

    def cost(self, lock: locks.TableLock) -> TableCost:
        table = self.table_of_index(lock.table) if lock.by_index else lock.table
        if table not in self.stats:
            with connection.cursor() as cursor:
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
        if m := _SETTING.match(_COMMENT.sub(" ", text).strip()):
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
    one_line = " ".join(_COMMENT.sub(" ", text).split())
    return StatementCost(
        sql=one_line[:200], kinds=list(found.kinds), lock=found.mode.sql_name,
        hold=found.hold.name.lower(), blocks=found.mode.blocks, tables=tables,
        lock_timeout=settings_now["lock_timeout"] or "none", seconds=seconds, held_seconds=seconds)


def _jobs(migration: Migration, seen: dict[str, gates.Gate], reader: _Catalog) -> list[JobCost]:
    wanted = [(gate.job_name, "requires") for gate in gates_of(migration)]
    wanted += [(job, "enqueues") for job in enqueues_of(migration)]
    return [_job(name, role, seen, reader) for name, role in wanted]


def _job(name: str, role: str, seen: dict[str, gates.Gate], reader: _Catalog) -> JobCost:
    # The gate as a RequireJob showed it (its own inline limit), or else read for the rows only:
    # never stored in `seen`, which a later gate of another limit reads.
    gate = seen.get(name) or reader.gate(name)
    rows, rows_source = gate.remaining, "counted now"
    if gate.state == gates.GateState.OPEN:
        return JobCost(name, role, gate.describe(), 0, "finished", None, "finished", 0.0)
    if rows is None:  # its tables come with this plan: the table it walks, as analysed
        try:
            rows = reader.cost(locks.TableLock(get_job(name).table, locks.Mode.NONE,
                                               locks.Hold.NONE)).rows
            rows_source = "the table's estimate" if rows is not None else "table not found"
        except DatabaseError:
            rows, rows_source = None, "table not found"
    run = gate.run or (control.latest_run(name) if gates.engine_tables_exist() else None)
    rate, rate_source = None, ""
    if run is not None:
        rate = sampled_rate(run) or progress_of(run).rows_per_second
        rate_source = f"the pace of run #{run.pk}'s latest batches" if rate else ""
    if not rate:
        rate, rate_source = rows_per_second(), "default rate, no run yet"
    seconds = None if rows is None else rows / rate
    return JobCost(name, role, gate.describe(), rows, rows_source, rate, rate_source, seconds)


# -- words --------------------------------------------------------------------------------------------


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def timeout_words(value: str) -> str:
    """A timeout setting as people say it: '2000ms' -> '2s', '0' -> 'none'."""
    value = value.strip()
    m = re.fullmatch(r"(\d+)\s*(ms)?", value)
    if m is None:
        return value
    millis = int(m[1])  # a bare number is milliseconds too
    if millis == 0:
        return "none"
    return f"{millis / 1000:g}s" if millis >= 1000 else f"{millis}ms"


def approx(seconds: float | None) -> str:
    if seconds is None:
        return "duration unknown"
    return "<1s" if seconds < 1 else f"~{format_duration(seconds)}"


HOLD_WORDS = {
    "none": "no table lock",
    "brief": "brief (catalog only)",
    "rows": "as long as the rows it changes take",
    "scan": "a scan of the table",
    "build": "an index build",
    "rewrite": "a rewrite of the table",
    "unknown": "unknown: read the SQL",
}


def statement_lines(s: StatementCost) -> list[str]:
    """Two lines: the statement, then what it locks, on what, for how long."""
    if not s.tables:
        what = f"{HOLD_WORDS[s.hold]}" + ("" if s.hold != "none" else f" ({', '.join(s.kinds)})")
        return [s.sql[:110], f"  {what}"]
    on = "; ".join(f"{t.lock} on {t.describe()}" for t in s.tables)
    how = HOLD_WORDS[s.hold] if s.hold in ("brief", "none", "unknown") else (
        f"{HOLD_WORDS[s.hold]}, {approx(s.seconds)}")
    held = ""
    if s.held_seconds is not None and s.seconds is not None and s.held_seconds > s.seconds + 0.5:
        held = f"; held until its step commits, {approx(s.held_seconds)}"
    # Lock-safe steps ask again, backing off, when refused (operations/lock_retry.py): what the
    # SQL shows is the first request's lock_timeout.
    wait = (f"; its first lock request waits at most {s.lock_timeout}"
            if s.lock_timeout != "none" else "")
    return [s.sql[:110], f"  {on}: {', '.join(s.kinds)}, {how}; {s.blocks}{held}{wait}"]


def text_lines(plan: Plan) -> list[str]:
    """The plan as `migrate_online --plan` prints it (after its first line)."""
    lines = []
    for m in plan.migrations:
        lines.append(f"  {m.migration}  [{m.stage}-deploy]")
        lines += [f"      {line}" for line in m.gates]
        if m.error:
            lines.append(f"      SQL not renderable: {m.error}")
        for step in m.steps:
            how = "one transaction" if step.transaction else "outside a transaction"
            lines.append(f"      step {step.number}, {how}, {approx(step.seconds)}:")
            for s in step.statements:
                lines += [f"        {line}" for line in statement_lines(s)]
        lines += [f"      {job.describe()}" for job in m.jobs]
    totals = plan.as_dict()["totals"]
    jobs = ", ".join(f"{name} {approx(seconds)}" for name, seconds in totals["job_seconds"].items())
    lines.append(f"estimated: schema changes {approx(totals['ddl_seconds'])} "
                 f"(strongest lock {totals['strongest_lock']})"
                 + (f"; data jobs: {jobs}" if jobs else "")
                 + f" (at {size(int(plan.scan_bytes_per_second))}/s scanned, "
                   f"{plan.rows_per_second:,.0f} rows/s for a job that has not run)")
    return lines
