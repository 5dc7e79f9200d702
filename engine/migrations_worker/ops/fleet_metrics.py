"""The fleet's part of `/ops/metrics`: the open rollout (else the latest) as Prometheus gauges.

They come from `fleet.view.snapshot`, the one read model of a rollout, so the metrics, the
admin's fleet page, `/ops/fleet.json` and `fleet status` never disagree; like it, a scrape reads
the control database only and opens no connection to a target. A rollout lives in the control
database, not in a target, so these samples carry no `target`/`server` pair of the target read
(as `metrics.FAMILIES` do): their `target` and `server` labels name the rollout's targets.

Every metric is one entry of `FLEET_FAMILIES`, as in `metrics.FAMILIES`: a name, its help, its
labels and a function from the snapshot to its samples. No rollout yet: each family is there,
with no sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..fleet import view

Sample = tuple[tuple[str, ...], float]
ROLLOUT = ("rollout", "stage")
TARGET = ("rollout", "target", "server", "wave")
JOB = (*TARGET, "job")


def targets(snapshot: dict) -> Iterable[dict]:
    for wave in snapshot["waves"]:
        yield from wave["targets"]


def of_rollout(snapshot: dict, *more: str) -> tuple[str, ...]:
    rollout = snapshot["rollout"]
    return (str(rollout["id"]), rollout["stage"], *more)


def of_target(snapshot: dict, target: dict, *more: str) -> tuple[str, ...]:
    return (str(snapshot["rollout"]["id"]), target["target"], target["server"],
            str(target["wave"]), *more)


def _info(snapshot: dict) -> Iterable[Sample]:
    yield of_rollout(snapshot, snapshot["rollout"]["status"]), 1.0


def _counts(snapshot: dict) -> Iterable[Sample]:
    for status, n in sorted(snapshot["counts"].items()):
        yield of_rollout(snapshot, status), float(n)


def _target_status(snapshot: dict) -> Iterable[Sample]:
    for target in targets(snapshot):
        yield of_target(snapshot, target, target["status"]), 1.0


def _target_eta(snapshot: dict) -> Iterable[Sample]:
    for target in targets(snapshot):
        if target["status"] == "waiting" and target["eta_seconds"] is not None:
            yield of_target(snapshot, target), float(target["eta_seconds"])


def each_job(value: Callable[[dict], float | None]) -> Callable[[dict], Iterable[Sample]]:
    """One sample per data job of each waiting target, as its last step saw it (absent where
    the value is unknown: a job not started has no percent, a job without an estimate no ETA)."""

    def samples(snapshot: dict) -> Iterable[Sample]:
        for target in targets(snapshot):
            if target["status"] != "waiting":
                continue
            for job in target["jobs"]:
                found = value(job)
                if found is not None:
                    yield of_target(snapshot, target, job["job"]), float(found)

    return samples


def _ratio(job: dict) -> float | None:
    percent = job.get("percent")
    return None if percent is None else round(percent / 100, 4)


@dataclass(frozen=True)
class FleetFamily:
    name: str
    help: str
    labels: tuple[str, ...]
    samples: Callable[[dict], Iterable[Sample]]

    def metric(self, snapshot: dict) -> Metric:
        metric = GaugeMetricFamily(self.name, self.help, labels=list(self.labels))
        if snapshot["rollout"] is not None:
            for values, value in self.samples(snapshot):
                metric.add_metric(list(values), value)
        return metric


FLEET_FAMILIES: tuple[FleetFamily, ...] = (
    FleetFamily("mw_fleet_rollout_info", "1 for the open fleet rollout (else the latest), "
                "labelled with its stage and status (running, paused, halted, done)",
                (*ROLLOUT, "status"), _info),
    FleetFamily("mw_fleet_targets", "targets of the rollout by status (pending, running, "
                "waiting, held, passed, failed, skipped)", (*ROLLOUT, "status"), _counts),
    FleetFamily("mw_fleet_target_status", "1 for each target of the rollout, labelled with its "
                "server, wave (1 is the canary) and status", (*TARGET, "status"), _target_status),
    FleetFamily("mw_fleet_target_eta_seconds", "a waiting target's ETA: its slowest data job's "
                "(absent when unknown)", TARGET, _target_eta),
    FleetFamily("mw_fleet_job_progress_ratio", "fraction done, 0 to 1, of each data job a "
                "waiting target waits for, as its last step saw it", JOB, each_job(_ratio)),
    FleetFamily("mw_fleet_job_rows_done", "rows done by each data job a waiting target waits "
                "for", JOB, each_job(lambda job: job.get("rows_done"))),
    FleetFamily("mw_fleet_job_eta_seconds", "estimated seconds left of each data job a waiting "
                "target waits for (absent when unknown)", JOB,
                each_job(lambda job: job.get("eta_seconds"))),
)


class FleetCollector(Collector):
    """Reads the rollout's snapshot once per scrape."""

    def describe(self) -> list[Metric]:
        return []  # registering must not read the database

    def collect(self) -> Iterable[Metric]:
        snapshot = view.snapshot(view.latest())
        for family in FLEET_FAMILIES:
            yield family.metric(snapshot)
