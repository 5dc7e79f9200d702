"""`/ops/metrics`: the progress tables as Prometheus metrics, through prometheus_client.

A registry of its own per scrape (no process or platform metrics, nothing global), holding one
collector that reads the progress tables when Prometheus asks: the latest run of each job (its
progress, batches, hold and ETA error), and every run by status. `views.metrics` serves it, in
the text format or OpenMetrics as the scraper's Accept header asks, behind the status API's
authentication.

Every metric is one entry of `FAMILIES`: a name, a kind, its help, its labels and a function
from the scrape's `Snapshot` to its samples. A new one is one more entry, reading its own table
through the snapshot's runs (as the quarantined keys and undo runs do).

A scrape reads every target (conf.targets()), one `Snapshot` each, and labels every sample with
its `target` and `server`. A target that cannot be read is left out of that scrape with
`mw_target_up{target=...} 0` (1 for the others) and a warning in the log: one database down
must not blind the dashboards to the rest of the fleet.

The fleet rollout's gauges (`mw_fleet_*`) come from the control database, through the rollout's
own read model: `fleet_metrics`, a second collector of the same registry.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .. import conf
from ..job import UndoJob, job_classes
from ..logs import about
from ..models import (
    ACTIVE_STATUSES,
    BatchStatus,
    HoldKind,
    JobBatch,
    JobRun,
    JobRunEvent,
    QuarantinedKey,
    Resolution,
    RunStatus,
)
from ..runs.progress import OTHER_HOLD, Progress, eta_errors, progress_of
from . import targeting
from .fleet_metrics import FleetCollector

log = logging.getLogger(__name__)

HOLD_KINDS = ", ".join([*HoldKind.values, OTHER_HOLD])

Sample = tuple[tuple[str, ...], float]


class Snapshot:
    """What one scrape reads of one target, each part once and only if a family asks for it."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.now = timezone.now()
        self.using = using

    @cached_property
    def latest(self) -> list[JobRun]:
        """The latest run of each job, by job name."""
        runs = (JobRun.objects.using(self.using).order_by("job_name", "-id").distinct("job_name")
                .prefetch_related("checkpoints"))
        return list(runs)

    @cached_property
    def progress(self) -> dict[int, Progress]:
        return {run.pk: progress_of(run) for run in self.latest}

    @cached_property
    def batches(self) -> dict[int, dict[str, int]]:
        counts = {run.pk: {status.value: 0 for status in BatchStatus} for run in self.latest}
        rows = (JobBatch.objects.using(self.using).filter(run_id__in=list(counts)).values("run_id", "status")
                .annotate(n=Count("id")).order_by())
        for row in rows:
            counts[row["run_id"]][row["status"]] = row["n"]
        return counts

    @cached_property
    def hold_events(self) -> dict[int, Counter]:
        """Holds recorded for each latest run, by the kind each event carries (one per change
        of reason), counted in the database."""
        rows = (JobRunEvent.objects.using(self.using).filter(run_id__in=[run.pk for run in self.latest])
                .exclude(hold_kind="").values("run_id", "hold_kind").annotate(n=Count("id"))
                .order_by())
        counts: dict[int, Counter] = {run.pk: Counter() for run in self.latest}
        for row in rows:
            counts[row["run_id"]][row["hold_kind"]] = row["n"]
        return counts

    @cached_property
    def undoes(self) -> dict[str, str]:
        """Each registered undo job's name and the job it puts back."""
        return {job.name: job.undoes for job in job_classes() if issubclass(job, UndoJob)}

    @cached_property
    def undo_runs(self) -> list[dict]:
        return list(JobRun.objects.using(self.using).filter(job_name__in=list(self.undoes))
                    .values("job_name", "status").annotate(n=Count("id"))
                    .order_by("job_name", "status"))

    @cached_property
    def quarantined(self) -> dict[int, dict[str, int]]:
        """Each latest run's quarantined keys by resolution (open, accepted, retried)."""
        counts = {run.pk: {state.value: 0 for state in Resolution} for run in self.latest}
        rows = (QuarantinedKey.objects.using(self.using).filter(run_id__in=list(counts))
                .values("run_id", "resolution").annotate(n=Count("id")).order_by())
        for row in rows:
            counts[row["run_id"]][row["resolution"]] = row["n"]
        return counts

    @cached_property
    def runs_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in RunStatus}
        for row in JobRun.objects.using(self.using).values("status").annotate(n=Count("id")).order_by():
            counts[row["status"]] = row["n"]
        return counts


def labels(run: JobRun, *more: str) -> tuple[str, ...]:
    return (run.job_name, str(run.pk), *more)


def each_run(value: Callable[[JobRun, Progress], float | None]) -> Callable[[Snapshot], Iterable[Sample]]:
    """Samples of one value per latest run (absent where it is None)."""

    def samples(snapshot: Snapshot) -> Iterable[Sample]:
        for run in snapshot.latest:
            found = value(run, snapshot.progress[run.pk])
            if found is not None:
                yield labels(run), float(found)

    return samples


def _info(snapshot: Snapshot) -> Iterable[Sample]:
    for run in snapshot.latest:
        yield labels(run, run.status), 1.0


def _heartbeat_age(run: JobRun, p: Progress) -> float | None:
    if run.heartbeat_at is None or run.status in RunStatus.terminal():
        return None
    return round((timezone.now() - run.heartbeat_at).total_seconds(), 1)


def _batches(snapshot: Snapshot) -> Iterable[Sample]:
    for run in snapshot.latest:
        for status, n in sorted(snapshot.batches[run.pk].items()):
            yield labels(run, status), float(n)


def _quarantined(snapshot: Snapshot) -> Iterable[Sample]:
    for run in snapshot.latest:
        for state, n in sorted(snapshot.quarantined[run.pk].items()):
            yield labels(run, state), float(n)


def _holding(snapshot: Snapshot) -> Iterable[Sample]:
    for run in snapshot.latest:
        kind = snapshot.progress[run.pk].hold_kind
        if kind:
            yield labels(run, kind), 1.0


def _hold_events(snapshot: Snapshot) -> Iterable[Sample]:
    for run in snapshot.latest:
        for check, n in sorted(snapshot.hold_events[run.pk].items()):
            yield labels(run, check), float(n)


def _eta_error(attribute: str) -> Callable[[Snapshot], Iterable[Sample]]:
    def samples(snapshot: Snapshot) -> Iterable[Sample]:
        for run in snapshot.latest:
            for error in eta_errors(run):
                value = getattr(error, attribute)
                if value is not None:
                    yield labels(run, str(error.checkpoint)), float(value)

    return samples


def _undo_runs(snapshot: Snapshot) -> Iterable[Sample]:
    for row in snapshot.undo_runs:
        yield (row["job_name"], snapshot.undoes[row["job_name"]], row["status"]), float(row["n"])


def _undo_rows_kept(snapshot: Snapshot) -> Iterable[Sample]:
    for run in snapshot.latest:
        if run.job_name in snapshot.undoes:
            kept = sum(value for name, value in (run.report or {}).items()
                       if name.endswith(UndoJob.KEPT_SUFFIX) and isinstance(value, int | float))
            yield (*labels(run), snapshot.undoes[run.job_name]), float(kept)


def _runs(snapshot: Snapshot) -> Iterable[Sample]:
    for status, n in sorted(snapshot.runs_by_status.items()):
        yield (status,), float(n)


def _up(snapshot: Snapshot) -> Iterable[Sample]:
    yield (), 1.0  # kept only when every other family of the target could be read (`collect`)


def _active(snapshot: Snapshot) -> Iterable[Sample]:
    yield (), float(sum(n for status, n in snapshot.runs_by_status.items()
                        if status in ACTIVE_STATUSES))


@dataclass(frozen=True)
class Family:
    name: str
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily]
    help: str
    labels: tuple[str, ...]
    samples: Callable[[Snapshot], Iterable[Sample]]

    def metric(self, samples: Iterable[Sample]) -> Metric:
        """The family with `samples`, each led by its target's labels (TARGET)."""
        metric = self.kind(self.name, self.help, labels=[*TARGET, *self.labels])
        for values, value in samples:
            metric.add_metric(list(values), value)
        return metric


TARGET = ("target", "server")  # on every sample, before the family's own labels
RUN = ("job", "run")
GAUGE, COUNTER = GaugeMetricFamily, CounterMetricFamily
TARGET_UP = Family("mw_target_up", GAUGE, "1 when the target's progress tables could be read "
                   "this scrape; 0 and none of its samples when it could not", (), _up)
FAMILIES: tuple[Family, ...] = (
    TARGET_UP,
    Family("mw_run_info", GAUGE, "1 for the latest run of each job, labelled with its status",
           (*RUN, "status"), _info),
    Family("mw_run_rows_done", GAUGE, "rows the latest run has processed", RUN,
           each_run(lambda run, p: p.rows_done)),
    Family("mw_run_rows_estimated", GAUGE, "rows the latest run is expected to process", RUN,
           each_run(lambda run, p: p.estimated_total)),
    Family("mw_run_progress_ratio", GAUGE, "fraction done, 0 to 1", RUN,
           each_run(lambda run, p: round(p.percent / 100, 4))),
    Family("mw_run_rows_per_second", GAUGE, "average rate since the run started", RUN,
           each_run(lambda run, p: p.rows_per_second or 0.0)),
    Family("mw_run_eta_seconds", GAUGE, "estimated seconds left (absent when unknown)", RUN,
           each_run(lambda run, p: p.eta_seconds)),
    Family("mw_run_batch_size", GAUGE, "current batch size", RUN,
           each_run(lambda run, p: p.batch_size)),
    Family("mw_run_on_hold", GAUGE, "1 while a health check holds the run", RUN,
           each_run(lambda run, p: 1.0 if p.hold_reason else 0.0)),
    Family("mw_run_hold_reason", GAUGE, "1 for the kind of hold on the run now "
           f"({HOLD_KINDS}); absent when not held", (*RUN, "check"), _holding),
    Family("mw_run_hold_events", COUNTER, "holds the latest run recorded, by kind (one per "
           "change of reason)", (*RUN, "check"), _hold_events),
    Family("mw_run_heartbeat_age_seconds", GAUGE, "seconds since a worker last reported "
           "(active runs)", RUN, each_run(_heartbeat_age)),
    Family("mw_run_batches", GAUGE, "batches of the latest run by status", (*RUN, "status"),
           _batches),
    Family("mw_run_quarantined_keys", GAUGE, "keys the latest run set aside, by state (open: "
           "the run cannot finish; accepted; retried)", (*RUN, "state"), _quarantined),
    Family("mw_run_eta_error_ratio", GAUGE, "a finished run's ETA at each checkpoint (10, 50 "
           "percent) against its actual end: (predicted - actual) / actual seconds left",
           (*RUN, "checkpoint"), _eta_error("error_ratio")),
    Family("mw_run_eta_error_seconds", GAUGE, "a finished run's ETA at each checkpoint minus the "
           "seconds that were really left", (*RUN, "checkpoint"), _eta_error("error_seconds")),
    Family("mw_undo_runs", GAUGE, "runs of each undo job by status (`backfill undo`)",
           ("job", "undoes", "status"), _undo_runs),
    Family("mw_undo_rows_kept", GAUGE, "rows the latest undo run found changed since the job it "
           "undoes and left as they are (reported, never overwritten)", (*RUN, "undoes"),
           _undo_rows_kept),
    Family("mw_runs", GAUGE, "runs of every job by status", ("status",), _runs),
    Family("mw_runs_active", GAUGE, "runs in an active state, all jobs", (), _active),
)


class ProgressCollector(Collector):
    """Reads the progress tables at each scrape, one family after another."""

    def __init__(self, families: tuple[Family, ...] = FAMILIES):
        self.families = families

    def describe(self) -> list[Metric]:
        return []  # registering must not read the database; names are checked by the tests

    def collect(self) -> Iterable[Metric]:
        found: dict[str, list[Sample]] = {family.name: [] for family in self.families}
        for using in conf.targets():
            for name, samples in self.of_target(using).items():
                found[name].extend(samples)
        for family in self.families:
            yield family.metric(found[family.name])

    def of_target(self, using: str) -> dict[str, list[Sample]]:
        """Every family's samples of one target, labelled with it; only `mw_target_up 0` when
        its database cannot be read."""
        where = (using, targeting.server_of(using))
        snapshot = Snapshot(using)
        try:
            return {family.name: [((*where, *values), value)
                                  for values, value in family.samples(snapshot)]
                    for family in self.families}
        except DatabaseError as exc:
            log.warning("target=%s not read for the metrics: %s", using, targeting.first_line(exc),
                        extra=about(target=using))
            return {TARGET_UP.name: [(where, 0.0)]}


def registry() -> CollectorRegistry:
    """A registry of this scrape's own: only the engine's metrics."""
    found = CollectorRegistry(auto_describe=False)
    found.register(ProgressCollector())
    found.register(FleetCollector())
    return found
