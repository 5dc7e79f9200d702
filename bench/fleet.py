"""The fleet case: one staged deploy across N seeded databases on two PostgreSQL servers, by the
shell loop a team would write and by `manage.py fleet rollout`, side by side in one run.

    python -m bench.fleet [--databases 8] [--scale small] [--rate 50] [--workers 2] [--keep]
    python -m bench.fleet --report bench/results/fleet/raw/fleet.json    # redraw fleet.md

Each contender gets its own fresh copies of the same seeded legacy template (seed/fleet.py: one
per server, the databases alternating between them), the same 2 Celery workers (solo pool, queue
`migrations`) and beat, declared in one targets file, and the same live load on every database
(bench/load.py's `BenchLoad`, `--rate` statements/s each):

- **the loop**: for each database `DEPLOY_DATABASE=<it> deploy/deploy.sh pre`, one after the
  other; then the same with `post` (the release is rolled out in between);
- **the rollout**: `manage.py fleet rollout --stage pre`, then `--stage post`, default waves
  (1,25%,100%: a canary alone, then the rest at most 4 at a time), `--select contender=rollout`.

Measured: each contender's wall time (both stages), and per database the load's statements,
errors and p50/p99/max during its own deploy windows (the loop: its `deploy.sh pre` and `post`
runs; the rollout: its RolloutTarget's started_at..finished_at in the pre and the post rollout),
the load that is judged, and from the first stage's start to the last one's end (for reference:
in the loop each database idles most of that time). Output: `bench/results/fleet/fleet.md` and
`raw/fleet.json` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench.common import (
    APP_DEPLOY,
    APP_LOAD,
    BROKER_URL,
    PG_SERVER,
    RESULTS,
    ROOT,
    cpu_seconds,
    django_env,
)
from bench.contenders import CELERY, Process, flush_broker
from bench.fleet_report import write_report
from bench.load import BenchLoad, latency_summary, windows_summary
from seed import fleet as seed_fleet

SECOND_SERVER = os.environ.get("BENCH_SECOND_PG_URL", "postgres://postgres@127.0.0.1:55434")
PREFIX = "bench_fleet"
CONTENDERS = ("loop", "rollout")
OUT = RESULTS / "fleet"


Window = tuple[float, float]  # wall-clock seconds, start and end


def log(message: str) -> None:
    print(f"[bench fleet {time.strftime('%H:%M:%S')}] {message}", flush=True)


class FleetLoad:
    """The live load on every database of one contender, started and stopped together."""

    def __init__(self, members: list[seed_fleet.Member], rate: float):
        self.loads = {m.name: BenchLoad(f"{m.url}?application_name={APP_LOAD}", seed=n + 1,
                                        rate=rate) for n, m in enumerate(members)}

    def start(self) -> None:
        for load in self.loads.values():
            load.start()
        for name, load in self.loads.items():
            load.ready.wait(120)
            if load.crashed:
                raise RuntimeError(f"the load on {name} could not start: {load.crashed}")
        # What the load itself costs the 2 shared cores: this process (the load's threads) and
        # the load's own database sessions.
        self.began = (time.monotonic(), time.process_time(), self.server_cpu())

    def server_cpu(self) -> float:
        return sum(cpu_seconds(load.pid) or 0.0 for load in self.loads.values())

    def stop(self, start: float, end: float, windows: dict[str, list[Window]]) -> dict:
        """Per database: the load over its own deploy windows (`own`) and over the whole run
        (`whole`); and the CPU the load used, in cores."""
        wall, client, server = self.began
        used = {"client_cores": (time.process_time() - client) / (time.monotonic() - wall),
                "server_cores": (self.server_cpu() - server) / (time.monotonic() - wall)}
        for load in self.loads.values():
            load.halt()
        found = {}
        for name, load in self.loads.items():
            load.join(30)
            found[name] = {"own": windows_summary(load.samples, windows.get(name, [])),
                           "whole": latency_summary(load.samples, start, end),
                           "windows": windows.get(name, []),
                           "first_errors": load.result.errors[:3],
                           "crashed": repr(load.crashed) if load.crashed else ""}
        return {"databases": found, "load_cpu": used}


def environment(control: str, targets: Path) -> dict[str, str]:
    env = django_env(control, application=APP_DEPLOY, log_level="INFO")
    return {**env, "MW_TARGETS_FILE": str(targets), "PYTHON": sys.executable}


WAVES = """
SELECT r.stage, t.wave, count(*), extract(epoch FROM max(t.finished_at) - min(t.started_at))
FROM migrations_worker_rollouttarget t JOIN migrations_worker_rollout r ON r.id = t.rollout_id
GROUP BY r.stage, t.wave ORDER BY min(t.started_at)
"""


OWN_WINDOWS = """
SELECT t.target, extract(epoch FROM t.started_at), extract(epoch FROM t.finished_at)
FROM migrations_worker_rollouttarget t JOIN migrations_worker_rollout r ON r.id = t.rollout_id
WHERE t.target = ANY(%s) AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL
ORDER BY r.created_at
"""


def run_loop(members: list[seed_fleet.Member], stage: str, env: dict[str, str],
             logs: Path) -> dict[str, Window]:
    """The shell loop: `deploy/deploy.sh STAGE` per database, one after the other. Returns when
    each database's run began and ended (wall clock)."""
    took = {}
    with open(logs / f"loop_{stage}.log", "ab") as out:
        for member in members:
            began = time.time()
            done = subprocess.run(["deploy/deploy.sh", stage], cwd=ROOT, stdout=out,
                                  stderr=subprocess.STDOUT, check=False,
                                  env={**env, "DEPLOY_DATABASE": member.name})
            if done.returncode != 0:
                raise RuntimeError(f"deploy/deploy.sh {stage} on {member.name} exited "
                                   f"{done.returncode}: see {logs / f'loop_{stage}.log'}")
            took[member.name] = (began, time.time())
    return took


def run_rollout(stage: str, env: dict[str, str], logs: Path) -> None:
    with open(logs / f"rollout_{stage}.log", "ab") as out:
        done = subprocess.run(
            [sys.executable, "manage.py", "fleet", "rollout", "--stage", stage,
             "--select", "contender=rollout", "--poll", "0.5"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"fleet rollout --stage {stage} exited {done.returncode}: see "
                           f"{logs / f'rollout_{stage}.log'}")


def rollout_windows(control_url: str, names: list[str]) -> dict[str, list[Window]]:
    """Each target's windows in the rollouts (pre, then post): from its dispatch to its pass, as
    the control database recorded them."""
    windows: dict[str, list[Window]] = {}
    with psycopg.connect(control_url) as conn:
        for target, start, end in conn.execute(OWN_WINDOWS, [names]):
            windows.setdefault(target, []).append((float(start), float(end)))
    return windows


def measure(contender: str, members: list[seed_fleet.Member], env: dict[str, str], logs: Path,
            args, control_url: str) -> dict:
    load = FleetLoad(members, args.rate)
    load.start()
    time.sleep(args.idle)
    stages: dict[str, dict] = {}
    loop_runs: dict[str, dict[str, Window]] = {}
    try:
        for stage in ("pre", "post"):
            log(f"{contender}: {stage} stage across {len(members)} database(s)")
            began = time.time()
            if contender == "loop":
                loop_runs[stage] = run_loop(members, stage, env, logs)
            else:
                run_rollout(stage, env, logs)
            stages[stage] = {"start": began, "end": time.time()}
            log(f"{contender}: {stage} stage took {stages[stage]['end'] - began:.1f}s")
    finally:
        first = stages.get("pre", {}).get("start", time.time())
        last = max((s["end"] for s in stages.values()), default=time.time())
        time.sleep(1.0)
        names = [m.name for m in members]
        windows = ({n: [runs[n] for runs in loop_runs.values() if n in runs] for n in names}
                   if contender == "loop" else rollout_windows(control_url, names))
        found = load.stop(first, last, windows)
    return {"contender": contender, "seconds": last - first,
            "stages": {k: v["end"] - v["start"] for k, v in stages.items()},
            "per_database": {stage: [end - start for start, end in runs.values()]
                             for stage, runs in loop_runs.items()},
            "load_cpu": found["load_cpu"],
            "databases": {m.name: {"server": m.server.label, **found["databases"][m.name]}
                          for m in members}}


def run(args) -> dict:
    servers = [seed_fleet.Server("pg-1", PG_SERVER.rstrip("/")),
               seed_fleet.Server("pg-2", SECOND_SERVER.rstrip("/"))]
    raw = OUT / "raw"
    logs = raw / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for server in servers:
        seed_fleet.ensure_template(server, f"{PREFIX}_template", args.scale, log=log)
    fleets = {c: seed_fleet.members(f"{PREFIX}_{c}", args.databases, servers, {"contender": c})
              for c in CONTENDERS}
    everything = [m for c in CONTENDERS for m in fleets[c]]
    for member in everything:
        seed_fleet.copy(member.server, member.name, f"{PREFIX}_template")
    control = f"{PREFIX}_control"
    seed_fleet.copy(servers[0], control, f"{PREFIX}_template")
    log(f"{len(everything)} copies and the control database ready in "
        f"{time.monotonic() - started:.0f}s")
    targets = seed_fleet.write_targets(raw / "targets.toml", everything)
    env = environment(control, targets)
    flush_broker()
    processes = [Process(f"worker{n}", [
        *CELERY, "-A", "migrations_worker", "worker", "-Q", "migrations", "--pool", "solo",
        "-n", f"fleet{n}@%h", "--without-gossip", "--without-mingle", "-l", "INFO",
    ], {**env, "DB_APPLICATION_NAME": "bench-engine"}, logs) for n in range(1, args.workers + 1)]
    results = {}
    try:
        for process in processes:
            process.wait_ready()
        processes.append(Process("beat", [
            *CELERY, "-A", "migrations_worker", "beat", "-s", str(logs / "celerybeat-schedule"),
            "-l", "INFO"], env, logs))
        control_url = servers[0].database_url(control)
        for contender in CONTENDERS:
            results[contender] = measure(contender, fleets[contender], env, logs, args,
                                         control_url)
        with psycopg.connect(control_url) as conn:
            results["rollout"]["waves"] = [
                {"stage": stage, "wave": wave, "targets": count, "seconds": float(seconds or 0)}
                for stage, wave, count, seconds in conn.execute(WAVES)]
    finally:
        for process in processes:
            process.stop()
        flush_broker()
        if not args.keep:
            seed_fleet.drop_all(everything)
            seed_fleet.drop(servers[0], control)
    return {
        "when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPUs", "scale": args.scale, "databases": args.databases,
        "workers": args.workers, "rate": args.rate, "broker": BROKER_URL,
        "servers": {s.label: s.url for s in servers}, "contenders": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", type=int, default=8, help="per contender (default 8)")
    parser.add_argument("--scale", default="small", help="seed_demo's size (default small)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0,
                        help="live-load statements per second on each database (default 50)")
    parser.add_argument("--idle", type=float, default=3.0,
                        help="seconds of load before the first stage (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--report", type=Path, default=None, metavar="RAW_JSON",
                        help="only write fleet.md again from a raw result")
    args = parser.parse_args(argv)
    if args.report is not None:
        result = json.loads(args.report.read_text())
    else:
        result = run(args)
        (OUT / "raw" / "fleet.json").write_text(json.dumps(result, indent=1))
    print(write_report(result, OUT / "fleet.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
