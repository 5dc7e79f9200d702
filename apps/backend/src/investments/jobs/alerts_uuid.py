"""`alerts_uuid`: give every alert its UUID, and every alert trigger the UUID of its alert.

Walks `investments_alert` by its integer id. In each range, the alerts still without a UUID get
a fresh one (an alert inserted since migration 0005 got one from the column default and keeps
it), then every trigger row of those alerts gets its alert's UUID. Both statements touch only
rows that still need it, so a batch done twice changes nothing the second time.

Trigger rows written meanwhile are filled by the sync trigger of migration 0005, which reads
the alert `FOR SHARE`: it waits for a batch that is giving that alert its UUID, and a batch
waits for it, so no reference is left behind. Done when no alert lacks a UUID and every trigger
row carries the UUID of the alert its `alert_id` names.
"""

from __future__ import annotations

from migrations_worker.job import BatchResult, Job, register

ASSIGN_UUIDS = """
UPDATE investments_alert SET uuid = gen_random_uuid()
WHERE id > %s AND id <= %s AND uuid IS NULL
"""

# The range is stated on both sides of the join: the planner then reads the trigger rows of the
# batch's alerts by their alert_id index, instead of scanning every trigger row in each batch
# (bench/results/medium/profile.md measured the difference).
COPY_TO_TRIGGERS = """
UPDATE investments_alerttrigger t SET alert_uuid = a.uuid
FROM investments_alert a
WHERE t.alert_id = a.id AND a.id > %(start)s AND a.id <= %(end)s
  AND t.alert_id > %(start)s AND t.alert_id <= %(end)s AND t.alert_uuid IS DISTINCT FROM a.uuid
"""

TO_DO_IN_RANGE = """
SELECT count(*) FROM investments_alert WHERE id BETWEEN %s AND %s AND uuid IS NULL
"""

REMAINING = """
SELECT (SELECT count(*) FROM investments_alert WHERE uuid IS NULL)
     + (SELECT count(*) FROM investments_alerttrigger t
        JOIN investments_alert a ON a.id = t.alert_id
        WHERE t.alert_uuid IS DISTINCT FROM a.uuid)
"""


@register
class AlertsUuid(Job):
    name = "alerts_uuid"
    table = "investments_alert"
    description = "Backfill Alert.uuid and AlertTrigger.alert_uuid"
    watched_tables = ("investments_alert", "investments_alerttrigger")
    # A claimed batch is row-locked while it runs, so a live worker's batch is never taken over
    # however long it takes; the lease only bounds how long a dead worker's batch waits. Short
    # batches: a batch holds its alerts' row locks until it commits, and an alert that fires
    # reads its alert FOR SHARE; ~80 ms keeps such a statement under 100 ms (bench/README.md).
    defaults = {"lease_seconds": 10.0, "target_batch_seconds": 0.08}
    # Alerts a second, one worker: bench/results/scale/scale.md, xlarge (10M alerts), the staged
    # deploy with 2 Celery workers and the live load on (medium: 43,376).
    measured_rows_per_second = 29_385.0
    # What an alert backfilled writes (its new version and three index entries, its trigger rows'
    # share): bench/results/medium/footprint.md.
    measured_wal_bytes_per_row = 476.0
    measured_growth_bytes_per_row = 144.0
    # Ten alerts for every asset: the deploy's longest job by far. On two lanes, the deploy's
    # second worker joins it as soon as the text archival and the merge are done, instead of
    # idling at the gate (bench/results/scale/scale.md, the window comparison).
    lanes = 2
    # Two statements a batch, the same text every time: planning them took 0.55-0.7 ms each
    # per 80 ms batch (docs/benchmarks.md).
    prepare_statements = True

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        cursor.execute(ASSIGN_UUIDS, [start, end])
        alerts = cursor.rowcount
        cursor.execute(COPY_TO_TRIGGERS, {"start": start, "end": end})
        references = cursor.rowcount
        return BatchResult(
            rows=alerts,
            counts={"alerts_backfilled": alerts, "references_backfilled": references},
        )

    def estimate_total(self, cursor, min_key: int | None, max_key: int | None) -> int:
        if min_key is None:
            return 0
        cursor.execute(TO_DO_IN_RANGE, [min_key, max_key])
        return cursor.fetchone()[0]

    def count_remaining(self, cursor) -> int:
        cursor.execute(REMAINING)
        return cursor.fetchone()[0]
