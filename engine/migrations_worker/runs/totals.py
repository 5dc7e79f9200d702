"""A run's totals (rows, batches, the job's counters), folded from its succeeded batch rows.

A batch's transaction writes only its own row besides the job's change, so the run row is
never locked by a batch. The next claim (claim.CLAIM), or a worker settling or finishing the
run (`fold`), adds the batches not counted yet: a batch's `folded` flag flips in the statement
that adds it to the run, so each batch counts exactly once however many workers fold.
"""

from __future__ import annotations

from django.db import connections
from psycopg import sql

from . import progress

# The succeeded batches of run %(run)s whose figures are not in the run's totals yet, marked as
# counted; the statement this is part of adds them to the run (RUN_TOTALS) under the same
# condition ({when}), so both happen or neither.
FOLDED = sql.SQL("""
folded AS (
    UPDATE migrations_worker_jobbatch b SET folded = true
    WHERE b.run_id = %(run)s AND NOT b.folded AND b.status = 'succeeded' AND {when}
    RETURNING b.rows_affected, b.counts
)
""")
RUN_TOTALS = sql.SQL("""
rows_done = r.rows_done + (SELECT coalesce(sum(rows_affected), 0) FROM folded),
batches_done = r.batches_done + (SELECT count(*) FROM folded),
report = (
    SELECT coalesce(jsonb_object_agg(key, total), jsonb_build_object())
    FROM (SELECT key, sum(value::numeric) AS total
          FROM (SELECT key, value FROM jsonb_each_text(r.report)
                UNION ALL
                SELECT key, value FROM folded,
                       jsonb_each_text(coalesce(folded.counts, jsonb_build_object()))
               ) AS every
          GROUP BY key) AS summed
)
""")
FOLD = sql.SQL("""
WITH {folded}
UPDATE migrations_worker_jobrun r SET {totals}, updated_at = now()
WHERE r.id = %(run)s AND EXISTS (SELECT 1 FROM folded)
RETURNING r.rows_done - (SELECT coalesce(sum(rows_affected), 0) FROM folded)::bigint, r.rows_done,
          r.estimated_total
""").format(folded=FOLDED.format(when=sql.SQL("true")), totals=RUN_TOTALS)


def fold(run_id: int, *, using: str) -> None:
    """Add the succeeded batches not yet counted to their run's totals (see FOLD)."""
    with connections[using].cursor() as cursor:
        cursor.execute(FOLD, {"run": run_id})
        row = cursor.fetchone()
    if row is not None:
        progress.passed(run_id, *row, using=using)
