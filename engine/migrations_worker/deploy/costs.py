"""What a plan of the pending migrations holds (`plan.build` estimates it) and how it reads:
the text `migrate_online --plan` prints and the dict `--json` writes. The whole deploy's
estimate is the plan walked on a clock (`clock`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from django.utils import timezone

from ..runs.progress import format_duration
from . import clock, locks


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
    rate: float | None  # rows per second, on all its lanes
    rate_source: str
    seconds: float | None
    lanes: int = 1  # the worker lanes it takes: EnqueueJob(workers=), or its run's
    # Where it stands before the deploy: "finished", "running" (a run works it now), "held" (its
    # run waits for an operator), or "" (to be started).
    status: str = ""
    # What its rows left will write (rows x the job's measured bytes a row); None: unknown.
    wal_bytes: float | None = None
    growth_bytes: float | None = None

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
    parents: list[str] = field(default_factory=list)  # the migrations it depends on
    gate_limits: dict[str, int] = field(default_factory=dict)  # job -> its gate's inline limit

    @property
    def seconds(self) -> float | None:
        return total(s.seconds for s in self.steps)

    @property
    def enqueues(self) -> list[str]:
        return [job.job for job in self.jobs if job.role == "enqueues"]


@dataclass
class Slot:
    """A replication slot: WAL it holds back is kept on the primary's disk until it moves."""

    name: str
    kind: str  # physical or logical
    active: bool
    retained_bytes: int | None  # WAL kept for it now


@dataclass
class Vacuum:
    """When autovacuum starts on a table a job rewrites: every row rewritten leaves a dead
    version, and until vacuum reclaims them the table keeps both."""

    table: str
    rows: int | None
    threshold: int | None  # dead rows before autovacuum starts (None: the table's unknown)
    enabled: bool


@dataclass
class Server:
    """What the database says about the room a deploy's writes need (`plan.server`)."""

    max_wal_size: int  # bytes
    checkpoint_completion_target: float
    max_slot_wal_keep_size: int | None  # None: unlimited
    wal_level: str
    slots: list[Slot] = field(default_factory=list)
    vacuum: list[Vacuum] = field(default_factory=list)

    @classmethod
    def from_dict(cls, found: dict) -> Server:
        """A server as `Plan.as_dict` wrote it (a fleet plan reads its targets' that way)."""
        return cls(**{**found, "slots": [Slot(**slot) for slot in found["slots"]],
                      "vacuum": [Vacuum(**table) for table in found["vacuum"]]})

    @property
    def wal_per_checkpoint(self) -> float:
        """WAL written between checkpoints before the next is requested: PostgreSQL spreads a
        checkpoint over `checkpoint_completion_target` of the interval, so it starts one after
        max_wal_size / (1 + target) (xlarge's 7.7 GB deploy: 3 requested at 4 GB)."""
        return self.max_wal_size / (1 + self.checkpoint_completion_target)


@dataclass
class Plan:
    stage: str
    migrations: list[MigrationCost]
    rows_per_second: float
    scan_bytes_per_second: float
    database: str = "default"  # the target it was read from
    workers: int = 2  # the worker lanes the deploy's jobs share
    server: Server | None = None

    def timeline(self) -> clock.Timeline:
        """The deploy on the clock: every stage of the plan, one after the other."""
        stages = clock.STAGES if self.stage == "all" else (self.stage,)
        return clock.walk(self.migrations, self.jobs(), stages, self.workers)

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
        timeline = self.timeline()
        return {
            "generated_at": timezone.now().isoformat(),
            "database": self.database,
            "stage": self.stage,
            "assumptions": {"rows_per_second": self.rows_per_second,
                            "scan_bytes_per_second": self.scan_bytes_per_second},
            "migrations": [{**asdict(m), "seconds": m.seconds,
                            "steps": [{**asdict(step), "seconds": step.seconds} for step in m.steps]}
                           for m in self.migrations],
            "jobs": {name: {**asdict(job), **asdict(timeline.jobs[name])}
                     for name, job in jobs.items()},
            "totals": {
                "migrations": len(self.migrations),
                "statements": len(statements),
                "ddl_seconds": None if any(v is None for v in ddl) else sum(ddl),
                "job_seconds": {name: job.seconds for name, job in jobs.items()},
                "workers": timeline.workers,
                "deploy_seconds": timeline.seconds,
                "gate_seconds": timeline.gate_seconds,
                "stages": {s.stage: {"seconds": s.seconds, "ddl_seconds": s.ddl_seconds,
                                     "gate_seconds": s.gate_seconds} for s in timeline.stages},
                "strongest_lock": max((locks.Mode[s.lock.replace(" ", "_")] for s in statements),
                                      default=locks.Mode.NONE).sql_name,
                "wal_bytes": total(job.wal_bytes for job in jobs.values()),
                "growth_bytes": total(job.growth_bytes for job in jobs.values()),
            },
            "server": None if self.server is None else asdict(self.server),
        }


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
                 + f" (at {size(int(plan.scan_bytes_per_second))}/s scanned)")
    return lines + timeline_lines(plan.timeline()) + room_lines(plan)


def room_lines(plan: Plan) -> list[str]:
    """What to make room for before starting: the data jobs' WAL and growth at the bytes a row
    the bench measured, against the server's checkpoints, replication slots and autovacuum."""
    jobs = [job for job in plan.jobs().values() if job.rows]
    if not jobs:
        return []
    lines = ["room it needs (the data jobs, at the bytes a row the bench measured; the index "
             "builds come on top):"]
    server = plan.server
    wal = total(job.wal_bytes for job in jobs)
    each = ", ".join(f"{job.job} {about(job.wal_bytes)}" for job in jobs)
    lines.append(f"  WAL: {about(wal)} ({each}){checkpoint_words(wal, server)}")
    growth = total(job.growth_bytes for job in jobs)
    lines.append(f"  disk: {about(growth)} more until vacuum reclaims the old row versions ("
                 + ", ".join(f"{job.job} {about(job.growth_bytes)}" for job in jobs) + ")")
    if server is None:
        return lines
    lines += slot_lines(server)
    for v in server.vacuum:
        rows = "rows unknown" if v.rows is None else f"{v.rows:,} rows"
        if not v.enabled:
            when = "autovacuum is off on it: VACUUM it after the job"
        elif v.threshold is None:
            when = "autovacuum's threshold unknown (never analysed)"
        else:
            when = f"autovacuum starts after ~{v.threshold:,} dead rows"
        lines.append(f"  vacuum: {v.table} ({rows}): {when}; each row a job rewrites leaves a "
                     "dead version until then")
    return lines


def checkpoint_words(wal: float | None, server: Server | None, of: str = "the deploy") -> str:
    """What `wal` bytes of WAL ask of the server's checkpoints ('' when either is unknown)."""
    if server is None or wal is None:
        return ""
    checkpoints = int(wal // server.wal_per_checkpoint)
    words = (f"; max_wal_size {size(server.max_wal_size)}: about {checkpoints} checkpoint(s) "
             "requested by it alone")
    if checkpoints:
        spare = wal * (1 + server.checkpoint_completion_target)
        words += (f" (max_wal_size {size(int(spare))} for {of} would spare them, at the price "
                  "of a longer crash recovery)")
    return words


def slot_lines(server: Server) -> list[str]:
    """Every replication slot of the server: any of them keeps the WAL it has not passed."""
    keep = ("unlimited" if server.max_slot_wal_keep_size is None
            else size(server.max_slot_wal_keep_size))
    if not server.slots:
        return [f"  replication slots: none (wal_level {server.wal_level})"]
    lines = []
    for slot in server.slots:
        state = "active" if slot.active else "INACTIVE"
        kept = "" if slot.retained_bytes is None else f", keeps {size(slot.retained_bytes)} now"
        lines.append(f"  replication slot {slot.name} ({slot.kind}, {state}{kept}): the primary "
                     f"keeps this WAL on its disk until the slot moves past it "
                     f"(max_slot_wal_keep_size: {keep})")
    return lines


def about(n: float | None) -> str:
    return "unknown" if n is None else f"~{size(int(n))}"


def timeline_lines(timeline: clock.Timeline) -> list[str]:
    """The deploy on the clock: the whole, each stage when there are two, each job's span."""
    lines = [f"estimated deploy with {timeline.workers} worker(s): {approx(timeline.seconds)} "
             f"(schema changes {approx(timeline.ddl_seconds)}, waiting at gates "
             f"{approx(timeline.gate_seconds)})"]
    if len(timeline.stages) > 1:
        lines += [f"  {s.stage}-deploy stage: {approx(s.seconds)} (schema changes "
                  f"{approx(s.ddl_seconds)}, waiting at gates {approx(s.gate_seconds)})"
                  for s in timeline.stages]
    for name, span in timeline.jobs.items():
        if span.starts_at is None or span.starts_at == span.ends_at:
            continue  # not in this deploy, or nothing to do
        late = (f", waits for a worker until {at(span.starts_at)}"
                if span.enqueued_at is not None and span.starts_at > span.enqueued_at + 0.5
                else "")
        lines.append(f"  job {name}: enqueued at {at(span.enqueued_at)}{late}, done at "
                     f"{at(span.ends_at)} (on {span.lanes} of the workers)")
    return lines


def at(seconds: float | None) -> str:
    """A time on the deploy's clock (tenths of a second early on, where whole ones say 0s)."""
    if seconds is None:
        return "an unknown time"
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(seconds)
