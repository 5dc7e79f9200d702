"""Where the engine's time goes on the alerts backfill, without the live load.

    python -m bench.profile_engine [--scale medium] [--targets 0.15 0.5 1.0]
    python -m bench.profile_engine --compare medium xlarge [--repeat 1] [--report]

On fresh copies of the alerts template, one process, no Celery (the same RunWorker loop the
Celery task runs), it measures:

- the single `UPDATE ... WHERE uuid IS NULL` (the speed limit);
- the engine at each target batch duration, with its time split by the runner's steps
  (run checks and health checks, claiming a batch, the job's own statements, the batch's
  bookkeeping and commit, the final catch-up and verification), counting statements;
- a bare keyset loop over the very same batch boundaries, committing each, with no bookkeeping:
  what batching itself costs, as opposed to what the engine adds to it.

Around each run it reads the server's statistics (bench/buffers.py: blocks hit and read per
table and index, WAL, checkpoints), and it explains three sampled batches (bench/explain.py).
Every figure is the fastest of `--repeat` runs. Writes bench/results/<scale>/profile.md (and
raw/profile.json); `--compare BASE OTHER` profiles both scales at the job's own target and
writes bench/results/scale/profile.md side by side (raw/profile-<scale>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from bench import profile_report
from bench.buffers import Probe, block_size, sizes, time_reads
from bench.common import APP_CONTENDER, APP_SAMPLER, RESULTS, connect, db_url, server_settings
from bench.databases import create, drop, ensure_templates
from bench.explain import explain_batch

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
os.environ["DEBUG"] = "0"
os.environ.setdefault("DATABASE_URL", db_url("postgres"))

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from bench import single_sql  # noqa: E402
from migrations_worker.models import JobBatch, JobRun, RunStatus  # noqa: E402
from migrations_worker.runs import control, runner  # noqa: E402
from migrations_worker.runs.states import transition  # noqa: E402
from seed.dataset import SIZES  # noqa: E402

JOB = "alerts_uuid"
COPY = "bench_profile_copy"
# The tables the job writes: their blocks and their indexes' are counted around every run.
TABLES = ("investments_alert", "investments_alerttrigger")


def use_database(name: str) -> None:
    connection.close()
    connection.settings_dict["NAME"] = name


@contextmanager
def fresh_copy(template: str):
    """A fresh copy of `template` (COPY), its block reads timed; the dict it yields receives
    the server's counters over the block (buffers.Probe) once every session on it is closed."""
    create(COPY, template)
    time_reads(COPY)
    probe = Probe(COPY, TABLES)
    measured: dict = {}
    try:
        yield measured
        use_database("postgres")
        measured["stats"] = probe.finish()
    finally:
        use_database("postgres")
        drop(COPY)


class Profile:
    """Wall time and statements per step of the runner, by wrapping its methods."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.statements: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.step = "other"

    @contextmanager
    def timed(self, step: str):
        outer, self.step = self.step, step
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - started
            self.calls[step] += 1
            self.step = outer

    def count(self, execute, sql, params, many, context):
        self.statements[self.step] += 1
        return execute(sql, params, many, context)

    def wrap(self, worker: runner.RunWorker) -> None:
        for method, step in (("_health", "run and health checks"),
                             ("_check_run", "run and health checks"),
                             ("_claim_next", "claim a batch"),
                             ("_process", "batch: bookkeeping + commit"),
                             ("_finalize", "catch-up + verification")):
            original = getattr(worker, method)

            def wrapped(*args, _original=original, _step=step, **kwargs):
                with self.timed(_step):
                    return _original(*args, **kwargs)

            setattr(worker, method, wrapped)
        job_process = worker.job.process_batch

        def process_batch(cursor, start, end):
            with self.timed("batch: the job's statements"):
                return job_process(cursor, start, end)

        worker.job.process_batch = process_batch


def work_to_end(worker: runner.RunWorker) -> runner.Outcome:
    """The worker's slices one after the other, waiting out holds, as Celery re-sends them."""
    while True:
        outcome = worker.work()
        if outcome.kind not in (runner.Kind.HOLD, runner.Kind.WAIT):
            return outcome
        time.sleep(outcome.delay)


def engine(template: str, target: float) -> dict:
    with fresh_copy(template) as measured:
        use_database(COPY)
        run = control.create_run(JOB, options={"target_batch_seconds": target}, actor="profile")
        transition(run.pk, RunStatus.RUNNING, using="default", actor="profile", message="profile inline")
        worker = runner.RunWorker(run.pk, name="profile")
        profile = Profile()
        profile.wrap(worker)
        started = time.perf_counter()
        with connection.execute_wrapper(profile.count):
            outcome = work_to_end(worker)
        total = time.perf_counter() - started
        ranges = list(JobBatch.objects.filter(run_id=run.pk).order_by("start_key")
                      .values_list("start_key", "end_key"))
        with connection.cursor() as cursor:
            cursor.execute("SELECT autovacuum_count, autoanalyze_count FROM pg_stat_user_tables "
                           "WHERE relname = 'investments_alert'")
            autovacuums, autoanalyzes = cursor.fetchone()
        if outcome.status != RunStatus.FINISHED:
            raise RuntimeError(f"the profiled run ended {outcome.status}")
    steps = dict(profile.seconds)
    # _process includes the job's statements: report the bookkeeping part on its own.
    steps["batch: bookkeeping + commit"] -= steps.get("batch: the job's statements", 0.0)
    return {"target": target, "seconds": total, "batches": len(ranges), "steps": steps,
            "autovacuums": autovacuums, "autoanalyzes": autoanalyzes,
            "statements": dict(profile.statements), "ranges": ranges, "stats": measured["stats"]}


def engine_lanes(template: str, target: float, lanes: int) -> float:
    """The engine with `lanes` workers at once (threads, each a RunWorker loop on its own
    connection, as Celery workers would be): seconds until the run is verified finished."""
    finished: list[float] = []
    with fresh_copy(template):
        use_database(COPY)
        run = control.create_run(JOB, options={"target_batch_seconds": target}, workers=lanes,
                                 actor="profile")
        transition(run.pk, RunStatus.RUNNING, using="default", actor="profile", message="profile inline")

        def lane(number: int) -> None:
            try:
                worker = runner.RunWorker(run.pk, name=f"profile-{number}")
                if work_to_end(worker).kind == runner.Kind.DONE:
                    finished.append(time.perf_counter())
            finally:
                connection.close()

        threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if JobRun.objects.get(pk=run.pk).status != RunStatus.FINISHED or not finished:
            raise RuntimeError("the profiled run did not finish")
    return min(finished) - started


def bare(template: str, ranges: list[tuple[int, int]], lanes: int = 1) -> dict:
    """The job's statements over the same ranges, a commit per batch, nothing else; with
    `lanes` connections in parallel, each taking every `lanes`-th range (as two workers would):
    how far the machine lets the work itself scale, before any engine."""
    from investments.jobs.alerts_uuid import ASSIGN_UUIDS, COPY_TO_TRIGGERS

    def lane(mine: list[tuple[int, int]]) -> None:
        with connect(COPY, APP_CONTENDER) as conn:
            for start, end in mine:
                with conn.transaction():
                    conn.execute(ASSIGN_UUIDS, [start, end])
                    conn.execute(COPY_TO_TRIGGERS, {"start": start, "end": end})

    with fresh_copy(template) as measured:
        threads = [threading.Thread(target=lane, args=(ranges[i::lanes],)) for i in range(lanes)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "stats": measured["stats"]}


def single(template: str) -> dict:
    with fresh_copy(template) as measured, connect(COPY, APP_CONTENDER) as conn:
        seconds = single_sql.alerts_uuid(conn)["seconds"]
    return {"seconds": seconds, "stats": measured["stats"]}


def sampled_batches(template: str, ranges: list[tuple[int, int]]) -> dict:
    """The job's statements over three batches as wide as the engine's median one, at the
    start, middle and end of the key range, under EXPLAIN (ANALYZE, BUFFERS) on a fresh copy
    (the data as a run finds it), each rolled back; and the sizes and settings of that copy."""
    from investments.jobs.alerts_uuid import ASSIGN_UUIDS, COPY_TO_TRIGGERS

    width = sorted(end - start for start, end in ranges)[len(ranges) // 2]
    low, high = ranges[0][0], ranges[-1][1]
    starts = {"start": low, "middle": (low + high - width) // 2, "end": high - width}
    with fresh_copy(template):
        with connect(COPY, APP_SAMPLER) as conn:
            found = {"sizes": sizes(conn, TABLES), "settings": server_settings(conn),
                     "block": block_size(conn), "width": width}
        found["sampled"] = {
            where: {"start": key, "end": key + width, **explain_batch(
                COPY, [(ASSIGN_UUIDS, [key, key + width]),
                       (COPY_TO_TRIGGERS, {"start": key, "end": key + width})], TABLES)}
            for where, key in starts.items()}
    return found


def best_of(repeat: int, measure) -> dict:
    """The least disturbed of `repeat` runs: on a shared machine, noise only ever adds time."""
    return min((measure() for _ in range(repeat)), key=lambda r: r["seconds"])


def measure(scale: str, targets: list[float], repeat: int, lanes: bool) -> dict:
    """Every run of one scale, with the server's counters around each; `lanes`: the 2-worker
    runs too."""
    templates = ensure_templates(scale, rebuild=False, log=print, alerts_only=True)
    with transaction.atomic():
        pass  # a first connection, so Django's start-up is not in the first measurement
    use_database("postgres")
    limit = best_of(repeat, lambda: single(templates.alerts))
    print(f"{scale}: single UPDATE {limit['seconds']:.1f} s")
    runs = []
    for target in targets:
        result = best_of(repeat, lambda t=target: engine(templates.alerts, t))
        ranges = result.pop("ranges")
        runs.append(result)
        loop = best_of(repeat, lambda r=ranges: bare(templates.alerts, r))
        result["bare_seconds"], result["bare_stats"] = loop["seconds"], loop["stats"]
        print(f"{scale} target {target}s: engine {result['seconds']:.1f} s in "
              f"{result['batches']} batches, bare keyset loop {result['bare_seconds']:.1f} s")
        if len(runs) == 1:
            samples = sampled_batches(templates.alerts, ranges)
        if lanes:
            result["bare2_seconds"] = best_of(
                repeat, lambda r=ranges: bare(templates.alerts, r, lanes=2))["seconds"]
            result["engine2_seconds"] = min(engine_lanes(templates.alerts, target, lanes=2)
                                            for _ in range(repeat))
            print(f"  on 2 connections {result['bare2_seconds']:.1f} s; engine with 2 workers "
                  f"{result['engine2_seconds']:.1f} s")
    return {"scale": scale, "alerts": templates.alerts_total, "single": limit["seconds"],
            "single_stats": limit["stats"], "runs": runs, **samples,
            "measured": time.strftime("%Y-%m-%d %H:%M %Z"), "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=list(SIZES), default="medium")
    parser.add_argument("--compare", nargs=2, choices=list(SIZES), metavar=("BASE", "OTHER"),
                        help="profile both scales (the job's own target unless --targets) and "
                             "write bench/results/scale/profile.md side by side")
    parser.add_argument("--report", action="store_true",
                        help="with --compare: only rewrite the report from the raw figures")
    parser.add_argument("--targets", type=float, nargs="+")
    parser.add_argument("--repeat", type=int, help="runs of each; the fastest counts "
                        "(default 2, with --compare 1)")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return
    args.targets = args.targets or [0.08, 0.15, 0.5]
    args.repeat = args.repeat or 2
    write(args, measure(args.scale, args.targets, args.repeat, lanes=True))


def compare(args) -> None:
    raw = RESULTS / "scale" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    command = (f"python -m bench.profile_engine --compare {' '.join(args.compare)}"
               + (f" --targets {' '.join(map(str, args.targets))}" if args.targets else "")
               + (f" --repeat {args.repeat}" if args.repeat else ""))
    entries = []
    for scale in args.compare:
        store = raw / f"profile-{scale}.json"
        if not args.report:
            entry = measure(scale, args.targets or [0.08], args.repeat or 1, lanes=False)
            store.write_text(json.dumps({**entry, "command": command}, indent=1))
        entries.append(json.loads(store.read_text()))
    out = RESULTS / "scale" / "profile.md"
    out.write_text(profile_report.compare(*entries, command=entries[-1]["command"]))
    print(out.read_text())


OVERHEAD_STEPS = ("claim a batch", "batch: bookkeeping + commit", "run and health checks")
# The same figures before issue #13 (this file's profile.md at commit 9f38f1d: the ORM claim, the
# run row locked and saved in every batch transaction), per target batch duration.
BEFORE = {0.15: "12.5 ms, 11 stmts", 0.5: "14.1 ms, 12 stmts", 1.0: "18.1 ms, 13 stmts"}


def write(args, entry: dict) -> None:
    rows, limit, runs = entry["alerts"], entry["single"], entry["runs"]
    out = RESULTS / args.scale
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "raw" / "profile.json").write_text(json.dumps(entry, indent=1))
    steps = sorted({step for run in runs for step in run["steps"]})

    def row(name: str, cells: list[str], first: str = "") -> str:
        return f"| {name} | {first} | " + " | ".join(cells) + " |"

    def overhead(r: dict) -> tuple[float, int]:
        seconds = sum(r["steps"].get(step, 0.0) for step in OVERHEAD_STEPS)
        statements = sum(r["statements"].get(step, 0) for step in OVERHEAD_STEPS)
        return seconds, statements

    lines = [
        f"# Where the engine's time goes: alerts backfill, {args.scale} scale "
        f"({rows:,} alerts), no live load",
        "",
        f"`python -m bench.profile_engine --scale {args.scale} --targets "
        f"{' '.join(map(str, args.targets))} --repeat {args.repeat}`: one "
        "process, the RunWorker loop inline (what each Celery slice runs), each run on a fresh "
        f"copy of the template; every figure is the fastest of {args.repeat} runs (the machine "
        "is shared: noise only adds time).",
        "",
        row("", [f"engine, target {r['target']} s" for r in runs], "single UPDATE"),
        "|---|--:|" + "--:|" * len(runs),
        row("total", [f"{r['seconds']:.1f} s" for r in runs], f"{limit:.1f} s"),
        row(f"throughput, {chr(215)} single UPDATE", [f"{limit / r['seconds']:.2f}" for r in runs],
            "1.00"),
        row("batches", [f"{r['batches']:,}" for r in runs], "1"),
        row("autovacuum / autoanalyze of the alerts table during the run",
            [f"{r['autovacuums']} / {r['autoanalyzes']}" for r in runs]),
        row("bare keyset loop over the same batches (job statements + commit, nothing else)",
            [f"{r['bare_seconds']:.1f} s ({limit / r['bare_seconds']:.2f}{chr(215)})"
             for r in runs]),
        row("... on 2 connections in parallel, every other batch each (what 2 workers could reach)",
            [f"{r['bare2_seconds']:.1f} s ({limit / r['bare2_seconds']:.2f}{chr(215)})"
             if r.get("bare2_seconds") else "-" for r in runs]),
        row("engine, 2 workers at once (threads, no Celery)",
            [f"{r['engine2_seconds']:.1f} s ({limit / r['engine2_seconds']:.2f}{chr(215)})"
             if r.get("engine2_seconds") else "-" for r in runs]),
        row("engine bookkeeping per batch (claim + batch rows + checks)",
            [f"{overhead(r)[0] / r['batches'] * 1000:.1f} ms, {overhead(r)[1] / r['batches']:.0f} stmts"
             for r in runs]),
        row("... before issue #13 (same machine, same template)",
            [BEFORE.get(r["target"], "-") for r in runs]),
        row("engine bookkeeping, share of the run",
            [f"{overhead(r)[0] / r['seconds'] * 100:.0f}%" for r in runs]),
    ]
    for step in steps:
        if step == "python and the rest":
            continue
        lines.append(row(step, [f"{r['steps'].get(step, 0):.2f} s, "
                                f"{r['statements'].get(step, 0):,} stmts" for r in runs]))
    lines += profile_report.scale_section(entry)
    (out / "profile.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
