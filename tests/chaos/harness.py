"""One chaos run: the whole online migration of a seeded database, under live load, while the
seed's faults are injected; then the invariants, and a comparison with an undisturbed run.

    template  <- migrate to the legacy schema, seed_demo --seed SEED
    calm      <- copy of template; `migrate_online --stage all` with every gate finished inline,
                 no faults
    chaos     <- copy of template; Celery workers + beat, live load, fault injector, and the
                 staged deploy: `migrate_online --stage pre --wait` rerun until it completes (as
                 a pipeline would rerun a failed deploy), then `--stage post --wait` likewise;
                 then `--postflight` and `--check`

Everything runs against a private PostgreSQL and Redis (the faults restart them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.chaos import faults
from tests.chaos.invariants import (
    ORACLE_CHECK,
    Before,
    Checked,
    LoadFigures,
    check_data,
    check_oracle,
    check_schema,
    job_results,
)
from tests.chaos.load import RestartableLoad
from tests.chaos.services import PrivatePostgres
from tests.scratch import Database
from tests.workers import PrivateRedis, Processes

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
LOCK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Size:
    seed_size: str  # seed_demo --size
    tuning: dict  # site tuning for the chaos run's jobs (slows a small seed down)
    gaps: tuple[float, float]  # seconds between faults
    deadline: float  # seconds the deploy may take under faults
    workers: int = 2


SIZES = {
    "small": Size("small", {"batch_size": 100, "max_batch_size": 200, "pause_seconds": 0.25},
                  gaps=(0.8, 2.5), deadline=300),
    "medium": Size("medium", {}, gaps=(1.0, 3.0), deadline=3 * 3600),
}


@dataclass
class Report:
    size: str
    seed: int
    seconds: float = 0.0
    faults: list[dict] = field(default_factory=list)
    deploy_attempts: list[dict] = field(default_factory=list)
    load_statements: int = 0
    load_errors_by_fault: int = 0
    load_errors_by_migration: list[str] = field(default_factory=list)
    load_reconnects: int = 0
    load_slowest_outside_faults: float = 0.0
    batches: int = 0
    batches_redone: int = 0
    beat_resends: int = 0
    rows_checked: dict[str, int] = field(default_factory=dict)
    results_compared: dict[str, int] = field(default_factory=dict)
    harness_errors: list[str] = field(default_factory=list)

    @property
    def fault_counts(self) -> Counter:
        return Counter(f["kind"] for f in self.faults)

    @property
    def hits(self) -> Counter:
        """Faults that hit something, by kind."""
        return Counter(f["kind"] for f in self.faults if f["hit"])

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {self.hits[k]}/{n}" for k, n in sorted(self.fault_counts.items()))
        return (
            f"chaos size={self.size} seed={self.seed}: {len(self.faults)} faults, "
            f"{sum(self.hits.values())} of them hit something (hit/injected: {kinds}); "
            f"deploy ran {len(self.deploy_attempts)} time(s); {self.batches} batches, "
            f"{self.batches_redone} redone, {self.beat_resends} beat re-send(s); load "
            f"{self.load_statements} statements, {self.load_errors_by_fault} errors from faults "
            f"({self.load_reconnects} reconnects), {len(self.load_errors_by_migration)} from the "
            f"migration, slowest outside restarts {self.load_slowest_outside_faults:.2f}s; "
            f"{sum(self.rows_checked.values()):,} rows checked "
            f"({self.rows_checked.get(ORACLE_CHECK, 0):,} equal to the oracle's), "
            f"{sum(self.results_compared.values()):,} result rows equal to the calm run; "
            f"{self.seconds:.0f}s"
        )


class ChaosRun:
    def __init__(self, pg: PrivatePostgres, redis: PrivateRedis, workdir: Path, seed: int,
                 size: str = "small"):
        self.pg = pg
        self.redis = redis
        self.workdir = workdir
        self.seed = seed
        self.size_name = size
        self.size = SIZES[size]
        self.report = Report(size, seed)
        self.names = {kind: f"chaos_{kind}_{size}_{seed}" for kind in ("template", "calm", "run")}
        self.deploy_process: subprocess.Popen | None = None

    # -- the three databases -----------------------------------------------------------------

    def template(self) -> Database:
        db = Database(self.pg.create_database(self.names["template"]), UNREACHABLE_BROKER)
        db.migrate_legacy()
        db.manage("seed_demo", "--size", self.size.seed_size, "--seed", str(self.seed),
                  timeout=3600)
        return db

    def calm_results(self, before: Before) -> dict[str, list]:
        url = self.pg.create_database(self.names["calm"], template=self.names["template"])
        calm = Database(url, UNREACHABLE_BROKER, MW_GATE_INLINE_LIMIT=str(10**12))
        calm.manage("migrate_online", "--stage", "all", timeout=4 * 3600)
        try:
            return job_results(calm, before)
        finally:
            self.pg.drop_database(self.names["calm"])

    # -- the disturbed run --------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        template = self.template()
        before = Before.read(template)
        expected = self.calm_results(before)
        url = self.pg.create_database(self.names["run"], template=self.names["template"])
        self.pg.drop_database(self.names["template"])
        db = Database(url, self.redis.url, DJANGO_SETTINGS_MODULE="tests.chaos.settings",
                      CHAOS_TUNING=json.dumps(self.size.tuning), MW_GATE_INLINE_LIMIT="0",
                      DB_APPLICATION_NAME=faults.DEPLOY_APP)
        # Worker processes: the faults SIGKILL and replace them (a thread cannot be killed).
        procs = Processes({**db.env, "DB_APPLICATION_NAME": faults.WORKER_APP}, self.workdir)
        spawned = iter(range(1, 10_000))

        def spawn_worker() -> str:
            name = f"w{next(spawned)}"
            procs.worker(name)
            return name

        for _ in range(self.size.workers):
            spawn_worker()
        procs.beat()
        load = RestartableLoad(f"{url}?application_name={faults.LOAD_APP}", seed=self.seed)
        injector = faults.Injector(
            faults.Cluster(self.pg, self.redis, procs, self.names["run"], spawn_worker,
                           lambda: self.deploy_process),
            self.seed, self.size.gaps)
        try:
            load.start()
            time.sleep(1.0)  # the application is busy before the deploy starts
            injector.start()
            deploy_started = time.monotonic()
            self.deploy_until_done(db)
            log = injector.stop()
            self.report.harness_errors += injector.errors
            result = load.stop()
            self.report.faults = [
                {"kind": f.kind, "at": round(f.started - deploy_started, 1),
                 "seconds": round(f.ended - f.started, 1), "detail": f.detail, "hit": f.hit}
                for f in log]
            self.settle(db)
            windows = [(f.started, f.ended) for f in log if f.kind == faults.RESTART_POSTGRES]
            split = load.attribute(windows)
            self.report.load_statements = result.count
            self.report.load_errors_by_fault = len(split.by_fault)
            self.report.load_errors_by_migration = [
                f"{e.op}: {e.message}" for e in split.by_migration]
            self.report.load_reconnects = load.reconnects
            self.report.load_slowest_outside_faults = round(load.slowest_outside(windows), 3)
            self.verify(db, before, load, expected)
        finally:
            injector.stop() if injector.is_alive() else None
            load.stop()
            procs.stop_all()
            self.report.seconds = time.monotonic() - started
            (self.workdir / "chaos-report.json").write_text(json.dumps(asdict(self.report), indent=1))
        return self.report

    def deploy_until_done(self, db: Database) -> None:
        """The staged deploy, each stage (`migrate_online --stage pre --wait`, then `post`) rerun
        after every failure until it succeeds, as a deploy pipeline would."""
        deadline = time.monotonic() + self.size.deadline
        for stage in ("pre", "post"):
            self.deploy_stage_until_done(db, stage, deadline)

    def deploy_stage_until_done(self, db: Database, stage: str, deadline: float) -> None:
        attempt = 0
        while True:
            attempt += 1
            log = self.workdir / f"deploy-{stage}-{attempt}.log"
            t0 = time.monotonic()
            proc = self.deploy_process = db.popen("migrate_online", "--stage", stage, "--wait",
                                                  "--poll", "0.5", log=log)
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(
                    f"the deploy did not complete within {self.size.deadline}s under faults; "
                    f"last output:\n{log.read_text(errors='replace')[-3000:]}") from None
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            self.report.deploy_attempts.append(
                {"stage": stage, "attempt": attempt, "exit": rc,
                 "seconds": round(time.monotonic() - t0, 1), "last_line": tail[0][:300]})
            if rc == 0:
                return
            assert rc not in (4,), f"a gate's job failed under faults:\n{log.read_text()[-3000:]}"
            time.sleep(1.0)

    def settle(self, db: Database) -> None:
        """After the faults: the deploy step's own checks pass, and nothing is pending."""
        post = db.manage("migrate_online", "--postflight", check=False)
        assert post.returncode == 0, post.stdout + post.stderr
        pending = db.manage("migrate_online", "--check", check=False)
        assert pending.returncode == 0, pending.stdout + pending.stderr

    def verify(self, db: Database, before: Before, load: RestartableLoad,
               expected: dict[str, list]) -> None:
        result = load.result
        successes = {op: len(v) - sum(1 for f in load.failures if f.op == op)
                     for op, v in result.latencies.items()}
        figures = LoadFigures(acknowledged=successes, ambiguous=dict(load.ambiguous),
                              alert_ids=list(result.alerts_inserted))
        checked = Checked()
        check_schema(db, checked)
        check_data(db, before, figures, checked)
        check_oracle(db, before, checked)
        self.report.rows_checked = checked.rows
        actual = job_results(db, before)
        for name, rows in expected.items():
            if actual[name] != rows:
                missing = [r for r in rows if r not in set(actual[name])][:3]
                extra = [r for r in actual[name] if r not in set(rows)][:3]
                raise AssertionError(f"{name}: differs from the undisturbed run ({len(rows)} rows "
                                     f"expected, {len(actual[name])} found; only in the calm "
                                     f"run: {missing}; only here: {extra})")
            self.report.results_compared[name] = len(rows)
        self.report.batches, self.report.batches_redone = db.rows(
            "SELECT count(*), count(*) FILTER (WHERE attempts > 1) FROM migrations_worker_jobbatch")[0]
        self.report.beat_resends = db.scalar(
            "SELECT count(*) FROM migrations_worker_jobrunevent WHERE actor = 'beat'")
