"""Run the benchmark: every contender on a fresh copy of the same seeded database, the same live
load on each, then the staged deploy (bench/deploy.py) at two scales; write the results and the
chart.

    python -m bench.run [--scale small|medium|large] [--rate 100] [--idle 10] [--repeat 3]
                        [--orm-rows 50000] [--only KEY ...] [--no-deploy] [--rebuild] [--keep]

Results go to bench/results/<scale>/ (results.md, latency.png; raw/ holds the JSON and the
worker logs). See bench/README.md for what each contender is and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench import report
from bench.common import RESULTS, connect, machine_cpu, server_settings
from bench.contenders import (
    BareLoop,
    Contender,
    Engine,
    NaiveCelery,
    OrmLoop,
    SingleTransaction,
    verify,
)
from bench.databases import Templates, create, drop, ensure_templates
from bench.deploy import measure_deploy
from bench.load import MemorySampler, Traffic, blocked_samples, latency_summary, lock_summary

# The engine's tuning for each job in this benchmark (`backfill start --option`): the jobs' own
# defaults, batches of ~0.08 s (a batch holds its rows' locks until it commits, so a live
# statement that meets one waits at most about that long: the 100 ms goal). The alerts backfill
# also runs once at the site's default of 0.5 s, for contrast: fewer, longer batches.
ENGINE_OPTIONS: dict[str, dict] = {"alerts_uuid": {}, "legacy_columns": {}, "ticker_dedup": {}}
CONTRAST_OPTIONS = {"target_batch_seconds": 0.5}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def contenders_for(templates: Templates, args) -> list[Contender]:
    """In the order they run. The throughput contenders of the alerts backfill run `--repeat`
    times, interleaved, so each comparison is made minutes apart at most (the report keeps the
    median run of each, and pools the load's statements over all of them)."""
    alerts = ENGINE_OPTIONS["alerts_uuid"]
    # The bare loops: the job's statements alone, on 1 and 2 connections, in the same rounds:
    # the ceiling this machine gives the engine's 1 and 2 workers in those minutes.
    throughput = [SingleTransaction("alerts_uuid"), Engine("alerts_uuid", 1, alerts),
                  Engine("alerts_uuid", 2, alerts), BareLoop(1), BareLoop(2)]
    return [
        *(throughput * args.repeat),
        # The site's default batch duration, to show what the shorter batches cost and buy.
        Engine("alerts_uuid", 1, CONTRAST_OPTIONS, variant="long"),
        OrmLoop(templates, args.orm_rows),
        NaiveCelery(templates),
        # The engine first: the single transaction's end state is checked against it.
        Engine("legacy_columns", 1, ENGINE_OPTIONS["legacy_columns"]),
        SingleTransaction("legacy_columns"),
        Engine("ticker_dedup", 1, ENGINE_OPTIONS["ticker_dedup"]),
        SingleTransaction("ticker_dedup"),
    ]


def compact(samples, origin: float) -> list[list]:
    """Samples for the chart: seconds since `origin`, latency in ms, ok, statement."""
    return [[round(s.at - origin, 3), round(s.seconds * 1000, 3), s.ok, s.op] for s in samples]


def by_statement(samples, start: float, end: float) -> dict:
    """p50/p99/max per statement of the load, to see which one a job slows down."""
    ops: dict[str, list] = {}
    for s in samples:
        if start <= s.at < end:
            ops.setdefault(s.op, []).append(s)
    return {op: latency_summary(group, start, end) for op, group in sorted(ops.items())}


def measure(contender: Contender, templates: Templates, args, logs: Path,
            engine_prints: dict) -> dict:
    database = f"bench_run_{templates.scale}_{contender.key}"
    log(f"{contender.key}: copy of {getattr(templates, contender.template)} -> {database}")
    create(database, getattr(templates, contender.template))
    memory = MemorySampler()
    memory.start()
    traffic = Traffic(database, rate=args.rate)
    try:
        contender.start(database, logs, memory)
        traffic.start()
        idle_start = time.time()
        time.sleep(args.idle)
        log(f"{contender.key}: {contender.label}")
        start = time.time()
        machine_before = machine_cpu()
        outcome = contender.run(database, logs, memory)
        machine_after = machine_cpu()
        end = time.time()
        time.sleep(args.tail)
        stopped = time.time()
        samples, errors, waits, server_cpu = traffic.stop()
        client_cpu = memory.cpu.used(start, end, born_inside=False)
    finally:
        traffic.abort()
        contender.stop()
        peaks = memory.stop()
    work_start, work_end = outcome.window or (start, end)
    cpu = {"database": server_cpu.used(start, end),
           "client": outcome.client_cpu if outcome.client_cpu is not None else client_cpu}
    slowed = [(s, w) for s, w in blocked_samples(samples, waits)
              if w.by_work and work_start <= s.at < work_end]
    check = verify(contender.job, database, templates, contender)
    if not args.keep:
        drop(database)
    peak = max([outcome.peak_rss_kib or 0, *peaks.values()]) or None
    same = None
    if check["fingerprint"] is not None:
        if isinstance(contender, Engine):
            engine_prints[contender.job] = check["fingerprint"]
        elif contender.job in engine_prints:
            same = check["fingerprint"] == engine_prints[contender.job]
    record = {
        "key": contender.key, "label": contender.label, "job": contender.job,
        "note": contender.note, "scale": templates.scale,
        "engine": isinstance(contender, Engine), "single": isinstance(contender, SingleTransaction),
        "rows": outcome.rows, "seconds": outcome.seconds,
        "rows_per_second": outcome.rows / outcome.seconds if outcome.seconds else 0.0,
        "peak_rss_kib": peak, "peak_rss_by_process": peaks, "details": outcome.details,
        "cpu_seconds": cpu,
        # The whole machine while it ran: busy CPU-seconds of all CPUs, and all there were.
        "machine_cpu": {"busy": machine_after[0] - machine_before[0],
                        "total": machine_after[1] - machine_before[1]},
        "idle": latency_summary(samples, idle_start, start),
        "during": latency_summary(samples, work_start, work_end),
        "idle_by_statement": by_statement(samples, idle_start, start),
        "during_by_statement": by_statement(samples, work_start, work_end),
        "locks": lock_summary(waits, work_start, work_end),
        # Load statements a lock of the work held up, with their whole latency.
        "slowed_by_work_ms": sorted((round(s.seconds * 1000, 1) for s, _ in slowed), reverse=True),
        "idle_locks": lock_summary(waits, idle_start, start),
        "errors": errors[:10],
        "remaining": check["remaining"], "same_result_as_engine": same,
        "phases": {"idle": 0.0, "start": work_start - idle_start, "end": work_end - idle_start,
                   "stop": stopped - idle_start},
        "samples": compact(samples, idle_start),
    }
    during = record["during"]
    log(f"{contender.key}: {outcome.rows:,} rows in {outcome.seconds:.1f}s "
        f"({record['rows_per_second']:,.0f}/s); load p50 {during['p50_ms']:.1f} ms, "
        f"p99 {during['p99_ms']:.1f} ms, max {during['max_ms']:.0f} ms, "
        f"{during['errors']} errors; longest lock wait on the job "
        f"{record['locks']['max_lock_wait_on_work_ms']:.0f} ms; remaining {check['remaining']}")
    return record


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split("\n")
    total = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().split("\n") if line.startswith("model name")),
               platform.processor())
    with connect("postgres") as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    settings = server_settings()
    return {
        "cpus": os.cpu_count(), "cpu": cpu, "ram_gib": round(total / 1024 / 1024, 1),
        "postgres": version, "postgres_settings": settings, "python": platform.python_version(),
        "kernel": platform.release(), "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "medium", "large"], default="medium")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="statements per second of the live load (default 100)")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds of load before each contender starts (the idle baseline)")
    parser.add_argument("--tail", type=float, default=2.0, help="seconds of load after it ends")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of the single UPDATE and the engine on the alerts (median kept)")
    parser.add_argument("--orm-rows", type=int, default=50_000,
                        help="alerts the ORM loop backfills (a subset at medium scale)")
    parser.add_argument("--only", nargs="*", metavar="KEY",
                        help="only these contenders (e.g. engine1_alerts_uuid single_alerts_uuid)")
    parser.add_argument("--no-deploy", action="store_true",
                        help="skip the staged deploy runs")
    parser.add_argument("--rollout", type=float, default=5.0,
                        help="seconds both releases run side by side between the stages")
    parser.add_argument("--release-pause", type=float, default=0.05,
                        help="seconds between a release's operations (demo_load --pause)")
    parser.add_argument("--rebuild", action="store_true", help="re-seed the template databases")
    parser.add_argument("--keep", action="store_true", help="keep each contender's database")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/<scale>")
    args = parser.parse_args(argv)

    out = args.out or RESULTS / args.scale
    raw = out / "raw"
    logs = raw / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict = {"scale": args.scale, "machine": machine(),
                     "settings": {"rate": args.rate, "idle": args.idle, "orm_rows": args.orm_rows,
                                  "repeat": args.repeat, "rollout": args.rollout,
                                  "engine_options": ENGINE_OPTIONS},
                     "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "contenders": [],
                     "deploys": []}
    log(f"machine: {results['machine']['cpus']} CPUs, {results['machine']['ram_gib']} GiB, "
        f"PostgreSQL {results['machine']['postgres']}")

    def save() -> None:
        (raw / "results.json").write_text(json.dumps(results, indent=1, default=str))

    templates = ensure_templates(args.scale, rebuild=args.rebuild, log=log)
    results["dataset"] = {"alerts": templates.alerts_total, "max_ids": templates.max_ids}
    engine_prints: dict = {}
    for contender in contenders_for(templates, args):
        if args.only and contender.key not in args.only:
            continue
        results["contenders"].append(measure(contender, templates, args, logs, engine_prints))
        save()
    if not args.no_deploy:
        for scale in dict.fromkeys(["small", args.scale]):
            scale_templates = templates if scale == args.scale else ensure_templates(
                scale, rebuild=args.rebuild, log=log)
            results["deploys"].append(measure_deploy(scale_templates, args, logs, log))
            save()
    results["seconds"] = time.time() - started
    results["machine"]["load_average_at_end"] = os.getloadavg()
    save()
    written = report.write(results, out)
    log(f"done in {results['seconds'] / 60:.1f} min: {', '.join(str(p) for p in written)}")
    print("\n".join(report.goals_text(results)), flush=True)


if __name__ == "__main__":
    main()
