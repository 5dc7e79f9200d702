"""The staged deploy, measured: the previous release serving, `migrate_online --stage pre --wait`,
the rollout (both releases side by side), the previous release stopped, `--stage post --wait`,
the new release alone; with 2 workers, beat and the bench's live load on every table the deploy
alters, from the seeded legacy database of a scale.

What it reports: each stage's time, each job's rows/s, each release's latency and errors (from
`demo_load`'s own figures), peak RSS of the workers and of each deploy step, the database
size at the end, and, per migration and per DDL step, the longest a statement of the live load
waited behind the deploy's locks (matched from the lock sampler to the statement's own latency).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from bench.buffers import Probe, block_size, over_a_deploy, time_reads
from bench.common import APP_DEPLOY, BROKER_URL, ROOT, connect, django_env, scalar
from bench.contenders import Process, beat, engine_worker, eta_errors, flush_broker
from bench.databases import Templates, create, drop, manage
from bench.load import MemorySampler, Traffic, blocked_samples, latency_summary
from bench.window import schema

JOB_SPANS = """
SELECT id, job_name, status, rows_done, batches_done, extract(epoch FROM started_at),
       extract(epoch FROM finished_at)
FROM migrations_worker_jobrun WHERE status = 'finished' ORDER BY started_at
"""
PROFILED = ("investments_alert", "investments_alerttrigger", "assets_asset")
WAL_LSN = "SELECT pg_current_wal_lsn()::text"
WAL_SINCE = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)"
# The tables whose size an operator must plan for: the archives the jobs fill, the tables they
# rewrite (every row gets a new version), with their indexes and TOAST.
SIZED_TABLES = ("assets_assetlegacytext", "assets_assetmergearchive", "investments_alert",
                "investments_alerttrigger", "assets_asset", "assets_assetpriceshistoric")
RELATION_BYTES = """
SELECT relname::text, pg_total_relation_size(oid) FROM pg_class
WHERE relname = ANY(%s) AND relkind = 'r'
"""
OUT_EVENT = re.compile(r"applying (\S+)\.\.\.|( OK)\b")
STEP_DONE = re.compile(r"ddl (.+?): done in (\d+)ms \((\d+) attempt")
REFUSED = re.compile(r"ddl (.+?): lock not granted")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
# demo_report's cross-checks of the legacy_columns report against the archive's row count: the
# texts the previous release writes during the deploy are archived by migration 0008's capture
# trigger, not by the job, so under release traffic the archive rightly holds more.
TRAFFIC_SKEWED = ("values archived = rows in the text archive",
                  "values unmatched = unmatched rows in the archive")


class StampedProcess:
    """A subprocess whose output is read as it comes and stamped (wall clock) chunk by chunk, so
    a line that is written in two parts ("applying X..." then " OK") has both times."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        self.chunks: list[tuple[float, str, str]] = []  # (when, stream, text)
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
        self.readers = [threading.Thread(target=self._read, args=(stream, label), daemon=True)
                        for stream, label in ((self.popen.stdout, "out"),
                                              (self.popen.stderr, "err"))]
        for reader in self.readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self, stream, label: str) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            self.chunks.append((time.time(), label, chunk.decode(errors="replace")))

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(10)
        with open(self.log_path, "w") as log:
            for when, label, text in self.chunks:
                log.write(f"[{when:.3f} {label}] {text}")
        return code

    def text(self) -> str:
        return "".join(text for _, _, text in self.chunks)

    def timeline(self) -> list[dict]:
        """The migrations applied, each with its start and end and its DDL steps (end, took,
        attempts) and refused lock requests: `applying X...` starts X and ` OK` ends it (stamped
        as they arrive on stdout), and each step logs its end and how long it took
        (operations/ddl.py), stamped by the log record's own time: the two streams are read by
        two threads, so their order of arrival is not the order of events."""
        migrations: list[dict] = []
        for when, label, text in self.chunks:
            if label != "out":
                continue
            for match in OUT_EVENT.finditer(text):
                if match.group(1):
                    migrations.append({"name": match.group(1), "start": when, "end": None,
                                       "steps": [], "refused": 0})
                elif migrations and migrations[-1]["end"] is None:
                    migrations[-1]["end"] = when
        for line in "".join(t for _, label, t in self.chunks if label == "err").splitlines():
            stamp = LOG_TIME.match(line)
            step, refused = STEP_DONE.search(line), REFUSED.search(line)
            if not stamp or not (step or refused):
                continue
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            owner = next((m for m in reversed(migrations) if m["start"] - 0.01 <= at), None)
            if owner is None:
                continue
            if step:
                owner["steps"].append({"step": step.group(1), "end": at, "ms": int(step.group(2)),
                                       "attempts": int(step.group(3))})
            else:
                owner["refused"] += 1
        return migrations


def release_argv(release: str, output: Path, stop_file: Path, pause: float) -> list[str]:
    """One release's traffic (`demo_load`), without its own lock sampler: the bench samples
    lock waits itself and matches them to the live load's statements."""
    return [sys.executable, "manage.py", "demo_load", "--release", release,
            "--output", str(output), "--stop-file", str(stop_file), "--pause", str(pause),
            "--sample", "0"]


def stage_argv(name: str) -> list[str]:
    return [sys.executable, "manage.py", "migrate_online", "--stage", name, "--wait",
            "--poll", "0.5"]


class Release:
    """One release's `demo_load` process: started, stopped by its stop file, read back."""

    def __init__(self, database: str, release: str, logs: Path, pause: float):
        self.output = logs / f"release_{release}.json"
        self.stop_file = logs / f"stop_{release}"
        self.stop_file.unlink(missing_ok=True)
        self.process = Process(
            f"release_{release}", release_argv(release, self.output, self.stop_file, pause),
            django_env(database, application=f"bench-release-{release}"), logs)
        self.started = time.time()

    def stop(self) -> dict:
        self.stop_file.touch()
        if self.process.popen.wait(timeout=120) != 0:
            raise RuntimeError(f"{self.process.name} failed:\n{self.process.log_tail()}")
        summary = json.loads(self.output.read_text())
        kept = {k: v for k, v in summary.items()
                if k not in ("texts", "rows", "holdings", "links", "lock_wait")}
        return kept | {"seconds": time.time() - self.started}


def stage(database: str, name: str, logs: Path, memory: MemorySampler, label: str) -> dict:
    env = django_env(database, application=APP_DEPLOY, log_level="INFO")
    process = StampedProcess(f"deploy_{label}_{name}", stage_argv(name), env, logs)
    memory.watch(f"deploy_{name}", process.pid)
    started = time.time()
    code = process.wait(timeout=4 * 3600)
    ended = time.time()
    if code != 0:
        raise RuntimeError(f"migrate_online --stage {name} exited {code}:\n{process.text()[-3000:]}")
    return {"stage": name, "start": started, "end": ended, "seconds": ended - started,
            "migrations": process.timeline()}


def attribute(migrations: list[dict], blocked: list) -> list[dict]:
    """Per migration: the load statements the deploy's locks held up (latency, the DDL that
    held them), and its DDL steps with the longest wait inside each."""
    rows = []
    for migration in migrations:
        start, end = migration["start"], migration["end"] or migration["start"]
        held = [(sample, wait) for sample, wait in blocked
                if wait.by_deploy and start - 0.05 <= wait.started <= end]
        steps = []
        for step in migration["steps"]:
            step_start = step["end"] - step["ms"] / 1000
            inside = [s.seconds * 1000 for s, w in held if step_start - 0.05 <= w.started <= step["end"]]
            steps.append({**step, "longest_wait_ms": max(inside, default=0.0),
                          "waits": len(inside)})
        worst = max(held, key=lambda pair: pair[0].seconds, default=None)
        rows.append({
            "migration": migration["name"], "seconds": end - start, "steps": steps,
            "refused": migration["refused"],
            "attempts": sum(step["attempts"] for step in migration["steps"]),
            "waits": len(held),
            "longest_wait_ms": worst[0].seconds * 1000 if worst else 0.0,
            "longest_wait_statement": worst[0].op if worst else "",
            "held_by": sorted(worst[1].deploy_queries)[0][:120] if worst and worst[1].deploy_queries else "",
        })
    return rows


def measure_deploy(templates: Templates, args, logs: Path, log, workers: int = 2) -> dict:
    """The staged deploy on a copy of `templates.seed`, with `workers` Celery workers; see the
    module docstring. `work_seconds` is the stages' own time (pre + post): the rollout between
    them is a pause the bench chooses, not deploy work."""
    scale = templates.scale
    label = scale if workers == 2 else f"{scale}_w{workers}"
    database = f"bench_run_{label}_deploy"
    log(f"staged deploy ({scale}): copy of {templates.seed} -> {database}")
    create(database, templates.seed)
    # What `migrate_online --plan` promises for this deploy, read before it starts, as an
    # operator would: its estimate is judged against the stages' measured time.
    plan = json.loads(manage(database, "migrate_online", "--plan", "--stage", "all", "--json",
                             "--workers", str(workers)))["totals"]
    flush_broker()
    # Hits and reads of the tables the jobs rewrite, checkpoints and WAL over the deploy: the
    # profile of how it scales (bench/buffers.py); block reads timed, to tell cache from disk.
    time_reads(database)
    probe = Probe(database, PROFILED)
    memory = MemorySampler()
    memory.start()
    processes: list[Process] = []
    releases: list[Release] = []
    # Twice the contenders' rate, on four connections: the deploy alters more tables.
    traffic = Traffic(database, rate=args.rate * 2, connections=4)
    result: dict = {"scale": scale, "workers": workers}
    try:
        for n in range(1, workers + 1):
            processes.append(engine_worker(database, f"worker_{label}_{n}", logs))
        for process in processes:
            process.wait_ready()
            memory.watch(process.name, process.pid)
        processes.append(beat(database, logs))
        traffic.start()
        idle_start = time.time()
        time.sleep(args.idle)
        previous = Release(database, "previous", logs, args.release_pause)
        releases.append(previous)
        time.sleep(2.0)  # the previous release serves before the deploy starts
        log(f"migrate_online --stage pre --wait ({scale})")
        wal_before = scalar(database, WAL_LSN)
        pre = stage(database, "pre", logs, memory, label)
        new = Release(database, "new", logs, args.release_pause)
        releases.append(new)
        log(f"rollout ({scale}): both releases for {args.rollout:.0f} s")
        time.sleep(args.rollout)
        result["previous"] = previous.stop()
        releases.remove(previous)
        log(f"migrate_online --stage post --wait ({scale})")
        post = stage(database, "post", logs, memory, label)
        time.sleep(args.tail)
        result["new"] = new.stop()
        releases.remove(new)
        stopped = time.time()
        samples, errors, waits, server_cpu = traffic.stop()
        worker_cpu = memory.cpu.used(pre["start"], post["end"], born_inside=False)
    finally:
        traffic.abort()
        for release in releases:
            release.stop_file.touch()
            release.process.stop()
        for process in processes:
            process.stop()
        peaks = memory.stop()
        flush_broker()
    try:
        counters = probe.finish()  # alone on the database: every session's counters are in
    except TimeoutError as exc:  # a session that outlived the deploy: no profile, said so
        log(f"staged deploy ({scale}): no buffer profile: {exc}")
        counters = None
    with connect(database) as conn:
        buffers = over_a_deploy(counters, block_size(conn)) if counters else None
        jobs = [
            {"job": job, "status": status, "rows": rows, "batches": batches,
             "seconds": float(ended) - float(began) if began and ended else None,
             "start": float(began) - idle_start if began else None,
             "end": float(ended) - idle_start if ended else None,
             "eta_errors": eta_errors(conn, run_id)}
            for run_id, job, status, rows, batches, began, ended
            in conn.execute(JOB_SPANS).fetchall()
        ]
    size = scalar(database, "SELECT pg_database_size(current_database())")
    # WAL the deploy wrote (the server's: on an idle machine, the deploy's and the load's), and
    # what the archives and the migrated tables weigh after it: the scale paragraph's slopes.
    wal_bytes = scalar(database, WAL_SINCE, [wal_before])
    with connect(database) as conn:
        relation_bytes = dict(conn.execute(RELATION_BYTES, [list(SIZED_TABLES)]).fetchall())
        assets = conn.execute("SELECT count(*) FROM assets_asset").fetchone()[0]
    checks = json.loads(manage(database, "demo_report", "--json", broker=BROKER_URL))["checks"]
    alerts = scalar(database, "SELECT count(*) FROM investments_alert")
    prices = scalar(database, "SELECT count(*) FROM assets_assetpriceshistoric")
    described = schema(database)  # for the maintenance window's comparison (bench/window.py)
    if not args.keep:
        drop(database)
    blocked = blocked_samples(samples, waits)
    steps = attribute(pre["migrations"] + post["migrations"], blocked)
    by_work = [s.seconds * 1000 for s, w in blocked if w.by_work and pre["start"] <= s.at < post["end"]]
    worker_peaks = [v for k, v in peaks.items() if k.startswith("worker_")]
    result.update({
        "alerts": alerts, "prices": prices, "seconds": post["end"] - pre["start"],
        "work_seconds": pre["seconds"] + post["seconds"], "schema": described,
        "plan": {"deploy_seconds": plan.get("deploy_seconds"), "workers": plan.get("workers"),
                 "stages": plan.get("stages")},
        "buffers": buffers,
        "wal_bytes": int(wal_bytes), "relation_bytes": relation_bytes, "assets": assets,
        "stages": {s["stage"]: {"seconds": s["seconds"], "migrations": len(s["migrations"])}
                   for s in (pre, post)},
        "database_bytes": size,
        "peak_worker_rss_kib": max(worker_peaks, default=None),
        "peak_deploy_rss_kib": max((peaks.get(f"deploy_{s}") or 0) for s in ("pre", "post")) or None,
        "peak_rss_by_process": peaks,
        "cpu_seconds": {"database": server_cpu.used(pre["start"], post["end"]), "client": worker_cpu},
        "idle": latency_summary(samples, idle_start, pre["start"]),
        "during": latency_summary(samples, pre["start"], post["end"]),
        "rollout": latency_summary(samples, pre["end"], post["start"]),
        "errors": errors[:10], "error_count": len(errors), "jobs": jobs, "steps": steps,
        "longest_deploy_wait_ms": max((s["longest_wait_ms"] for s in steps), default=0.0),
        "longest_batch_wait_ms": max(by_work, default=0.0),
        "checks_passed": all(c["passed"] for c in checks if c["check"] not in TRAFFIC_SKEWED),
        "checks": checks,
        "phases": {"idle": 0.0, "start": pre["start"] - idle_start, "pre_end": pre["end"] - idle_start,
                   "post_start": post["start"] - idle_start, "end": post["end"] - idle_start,
                   "stop": stopped - idle_start},
        "samples": [[round(s.at - idle_start, 3), round(s.seconds * 1000, 3), s.ok, s.op]
                    for s in samples],
    })
    log(f"staged deploy ({scale}): pre {pre['seconds']:.0f}s, post {post['seconds']:.0f}s; worker "
        f"peak RSS {(result['peak_worker_rss_kib'] or 0) / 1024:.0f} MiB; longest wait behind the "
        f"deploy's DDL {result['longest_deploy_wait_ms']:.0f} ms; releases: previous "
        f"{result['previous']['errors']} errors p99 {result['previous']['p99_ms']} ms, new "
        f"{result['new']['errors']} errors p99 {result['new']['p99_ms']} ms; schema checks "
        f"{'passed' if result['checks_passed'] else 'FAILED'}")
    return result
