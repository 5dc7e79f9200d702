"""The whole deploy's estimate: the plan walked on a clock, as the deploy would run it.

Summing the statements' durations and listing the jobs' apart says nothing about how long the
deploy takes: its jobs run on the Celery workers while its DDL goes on, and a gate waits only
for its own job. So the clock walks the pending migrations as `deploy.executor` applies them:

- one stage after the other (every stage: pre, then post, with no time for the rollout between);
  within a stage, pass after pass over its migrations in order;
- a migration applied adds its statements' estimated seconds to the clock; the jobs it enqueues
  start when it ends, each on as many free worker lanes as `EnqueueJob(workers=)` asks for (at
  most `workers`), or when enough lanes free, and take their rows over their rate;
- a gate whose job is finished lets its migration through; one whose job has at most the gate's
  inline limit left finishes it inline: the clock moves to the job's end; any other holds its
  migration and those after it that depend on it, while the others go on; a held gate's job is
  started if nothing runs it (the executor enqueues it), and once the pass is over the clock
  moves to the first of their ends (the executor waits for any);
- a job that runs now (an active run) holds its lanes from the start.

Unknown stays unknown: a statement or a job of unknown duration makes everything after it
unknown (None), never a guess. The durations themselves are the plan's (`plan`, `costs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

STAGES = ("pre", "post")


class JobCost(Protocol):
    """What the clock reads of a job's estimate (`costs.JobCost` is one): the clock knows the
    shape it walks, not the plan that holds it, so the plan can hold the clock."""

    status: str
    rows: int | None
    lanes: int
    seconds: float | None


class MigrationCost(Protocol):
    """What the clock reads of a migration's estimate (`costs.MigrationCost` is one)."""

    migration: str
    stage: str
    parents: list[str]
    gate_limits: dict[str, int]

    @property
    def seconds(self) -> float | None: ...

    @property
    def enqueues(self) -> list[str]: ...


@dataclass
class JobSpan:
    """A job on the clock, in seconds after the deploy starts (None: unknown, or not in it)."""

    lanes: int
    enqueued_at: float | None = None
    starts_at: float | None = None
    ends_at: float | None = None


@dataclass
class StageTime:
    stage: str
    seconds: float | None
    ddl_seconds: float | None
    gate_seconds: float | None  # waiting at gates, inline finishes included


@dataclass
class Timeline:
    workers: int
    stages: list[StageTime] = field(default_factory=list)
    jobs: dict[str, JobSpan] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return _sum(s.seconds for s in self.stages)

    @property
    def ddl_seconds(self) -> float | None:
        return _sum(s.ddl_seconds for s in self.stages)

    @property
    def gate_seconds(self) -> float | None:
        return _sum(s.gate_seconds for s in self.stages)


def _sum(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _known(value: float) -> float | None:
    return None if math.isinf(value) else value


class _Clock:
    def __init__(self, jobs: dict[str, JobCost], workers: int):
        self.costs = jobs
        self.workers = workers
        self.lanes = [0.0] * workers  # when each lane is free again
        self.now = 0.0
        self.ends: dict[str, float] = {}  # job -> its end (inf: unknown)
        self.starts: dict[str, float] = {}
        self.enqueued: dict[str, float] = {}

    def start(self, job: str) -> None:
        """Put `job` on the lanes it asks for, at once or when enough of them are free."""
        if job in self.ends:
            return
        cost = self.costs[job]
        self.enqueued[job] = self.now
        if cost.status == "finished" or cost.rows == 0:
            self.starts[job] = self.ends[job] = self.now
            return
        wanted = min(max(cost.lanes, 1), self.workers)
        taken = sorted(range(self.workers), key=lambda lane: self.lanes[lane])[:wanted]
        begin = max([self.now] + [self.lanes[lane] for lane in taken])
        held = cost.status == "held"  # waits for an operator: no end to foresee
        end = math.inf if held or cost.seconds is None or math.isinf(begin) else begin + cost.seconds
        for lane in taken:
            self.lanes[lane] = end
        self.starts[job], self.ends[job] = begin, end

    def left(self, job: str) -> float:
        """The rows `job` has left at the clock's time (inf: unknown)."""
        cost, end = self.costs[job], self.ends[job]
        if math.isinf(end) or cost.rows is None:
            return math.inf
        if end <= self.now:
            return 0.0
        span = end - self.starts[job]
        share = 1.0 if span <= 0 or self.now <= self.starts[job] else (end - self.now) / span
        return cost.rows * share

    def gate(self, job: str, limit: int) -> bool:
        """Whether a gate on `job` reached now lets its migration through (moving the clock
        past an inline finish); False: it holds it."""
        cost = self.costs[job]
        if job not in self.ends:
            if cost.status == "finished" or cost.rows == 0:
                return True
            if cost.status != "held" and cost.rows is not None and cost.rows <= limit:
                # Nothing runs it: the gate finishes it alone, on one lane's rate.
                inline = math.inf if cost.seconds is None else cost.seconds * max(cost.lanes, 1)
                self.starts[job] = self.enqueued[job] = self.now
                self.now = self.ends[job] = self.now + inline
                return True
            return False
        if self.ends[job] <= self.now:
            return True
        if self.left(job) <= limit:
            self.now = self.ends[job]
            return True
        return False


def walk(migrations: list[MigrationCost], jobs: dict[str, JobCost], stages: tuple[str, ...],
         workers: int) -> Timeline:
    """The deploy of `migrations` (in the order they apply) stage by stage, with `workers`
    worker lanes: when each stage ends, and each job's span."""
    clock = _Clock(jobs, workers)
    for name, cost in jobs.items():
        if cost.status == "running":
            clock.start(name)
    timeline = Timeline(workers)
    for stage in stages:
        timeline.stages.append(_stage(clock, [m for m in migrations if m.stage == stage], stage))
    timeline.jobs = {name: JobSpan(min(max(cost.lanes, 1), workers),
                                   _at(clock.enqueued, name), _at(clock.starts, name),
                                   _at(clock.ends, name))
                     for name, cost in jobs.items()}
    return timeline


def _at(times: dict[str, float], job: str) -> float | None:
    return _known(times[job]) if job in times else None


def _stage(clock: _Clock, migrations: list[MigrationCost], stage: str) -> StageTime:
    began = clock.now
    waiting = {m.migration for m in migrations}
    while waiting and not math.isinf(clock.now):
        held: set[str] = set()
        closed: set[str] = set()
        for migration in migrations:
            if migration.migration not in waiting:
                continue
            if held & set(migration.parents):
                held.add(migration.migration)
                continue
            # A gate found closed stays closed for the rest of the pass (`Pass.closed`).
            shut = next((job for job, limit in migration.gate_limits.items()
                         if job in closed or not clock.gate(job, limit)), None)
            if shut is not None:
                held.add(migration.migration)
                closed.add(shut)
                continue
            clock.now += math.inf if migration.seconds is None else migration.seconds
            waiting.discard(migration.migration)
            for job in migration.enqueues:
                clock.start(job)
        if not closed:
            break
        for job in sorted(closed):  # the executor enqueues what a closed gate waits for
            clock.start(job)
        clock.now = max(clock.now, min(clock.ends[job] for job in closed))
    ddl = _sum(m.seconds for m in migrations)
    total = None if math.isinf(clock.now) else clock.now - began
    gate = None if total is None or ddl is None else max(0.0, total - ddl)  # no float noise
    return StageTime(stage, total, ddl, gate)
