"""`legacy_columns`: archive the deprecated `Asset.sector` / `Asset.industry` text and link
each asset to the Sector / Industry its text names.

Every non-empty value (spaces alone are empty) of every asset, soft-deleted ones too, is archived
as it was (idempotent: one row per asset, field and value). The text matches a reference row
when it equals the row's name ignoring case and surrounding whitespace; only an unambiguous
match (exactly one live row) links the asset, and only where the asset has no link yet. Values
that match nothing, or several rows, stay in the archive with their outcome and are counted in
the run's report. The match is the database function `assets_legacy_text_matches` of migration
0008, which its capture trigger uses too: a value the previous release writes while the job
runs is archived and linked by the same rule, in the writer's own transaction.

A batch first locks its assets that have text (in key order, as an update of them would),
then archives and links. The capture trigger runs in a writer that already holds its asset's row
lock; had the batch inserted that asset's archive row before locking it, the writer would wait
on the batch's archive row while the batch waited on the writer's row lock: a deadlock, which
aborts one of them (the previous release's save, in the demo that found it).

Each link the job sets is recorded on the archive row of the value it came from (`linked_id`), so
`legacy_columns_undo` can take back exactly the links this job made, where they still stand.

A batch done twice changes nothing: the archive insert skips a (asset, field, value) it already
holds, and the link (and its record) is set only where it is still empty. Done when every
non-empty value of every asset is in the archive (the verification the gated drop of the
columns, 0013, relies on).
"""

from __future__ import annotations

from psycopg import sql

from migrations_worker.job import BatchResult, Job, register

ASSETS = "assets_asset"
ARCHIVE = "assets_assetlegacytext"
# (text column, link column)
FIELDS = (
    ("sector", "sector_ref_id"),
    ("industry", "industry_ref_id"),
)

LOCK_ASSETS = """
SELECT 1 FROM {assets} a
WHERE a.id > %(start)s AND a.id <= %(end)s
  AND (btrim(coalesce(a.sector, '')) <> '' OR btrim(coalesce(a.industry, '')) <> '')
ORDER BY a.id
FOR NO KEY UPDATE
"""

# One statement per field. `linked` sets the link where the asset has none; the value's archive
# row records it in `linked_id` (what `legacy_columns_undo` may take back): a new row as it is
# inserted, a row archived before (by the capture trigger, or before an undo) by `relinked`. The
# two never touch one row: a row `archived` inserts is not visible to `relinked`.
ARCHIVE_AND_LINK = """
WITH candidates AS (
    SELECT a.id AS asset_id, a.{text} AS value,
           assets_legacy_text_matches(%(field)s, a.{text}) AS matches
    FROM {assets} a
    WHERE a.id > %(start)s AND a.id <= %(end)s AND btrim(coalesce(a.{text}, '')) <> ''
), linked AS (
    UPDATE {assets} a SET {link} = c.matches[1]
    FROM candidates c
    WHERE a.id = c.asset_id AND cardinality(c.matches) = 1 AND a.{link} IS NULL
    RETURNING a.id, a.{link} AS link
), archived AS (
    INSERT INTO {archive} (asset_id, field, value, outcome, matched_id, linked_id, archived_at)
    SELECT c.asset_id, %(field)s, c.value,
           CASE cardinality(c.matches) WHEN 0 THEN 'unmatched' WHEN 1 THEN 'matched'
                ELSE 'ambiguous' END,
           CASE WHEN cardinality(c.matches) = 1 THEN c.matches[1] END,
           l.link,
           now()
    FROM candidates c LEFT JOIN linked l ON l.id = c.asset_id
    ON CONFLICT (asset_id, field, value) DO NOTHING
    RETURNING outcome
), relinked AS (
    UPDATE {archive} x SET linked_id = l.link
    FROM linked l JOIN candidates c ON c.asset_id = l.id
    WHERE x.asset_id = l.id AND x.field = %(field)s AND x.value = c.value
)
SELECT (SELECT count(*) FROM archived),
       (SELECT count(*) FROM archived WHERE outcome = 'matched'),
       (SELECT count(*) FROM archived WHERE outcome = 'unmatched'),
       (SELECT count(*) FROM archived WHERE outcome = 'ambiguous'),
       (SELECT count(*) FROM linked)
"""

NOT_ARCHIVED = """
SELECT count(*) FROM {assets} a
WHERE btrim(coalesce(a.{text}, '')) <> ''
  AND NOT EXISTS (SELECT 1 FROM {archive} x
                  WHERE x.asset_id = a.id AND x.field = %(field)s AND x.value = a.{text})
"""


REMAINING_KEYS = """
SELECT min(a.id), max(a.id) FROM {assets} a
WHERE btrim(coalesce(a.{text}, '')) <> ''
  AND NOT EXISTS (SELECT 1 FROM {archive} x
                  WHERE x.asset_id = a.id AND x.field = %(field)s AND x.value = a.{text})
"""


def query(template: str, text: str, link: str = "") -> sql.Composed:
    return sql.SQL(template).format(
        text=sql.Identifier(text), link=sql.Identifier(link or text),
        assets=sql.Identifier(ASSETS), archive=sql.Identifier(ARCHIVE),
    )


@register
class LegacyColumns(Job):
    name = "legacy_columns"
    table = ASSETS
    description = "archive Asset.sector/industry text and link assets to Sector/Industry"
    # Short batches: a batch holds its assets' row locks until it commits, and the application
    # edits assets all day; ~80 ms keeps a statement that meets one under 100 ms. The first
    # batch is small (the engine has no measure yet; it grows each batch at most twofold): a
    # first guess of 2,000 assets held them ~0.7 s under load, and the application with them.
    defaults = {"batch_size": 100, "max_batch_size": 20_000, "target_batch_seconds": 0.08}
    # Text values archived a second, one worker: bench/results/scale/scale.md, xlarge, the staged
    # deploy with 2 Celery workers and the live load on (medium: 17,729).
    measured_rows_per_second = 15_762.0
    # What a value archived writes: bench/results/medium/footprint.md (the archive row, the
    # asset's new version and their index entries).
    measured_wal_bytes_per_row = 1_003.0
    measured_growth_bytes_per_row = 384.0

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        counts = {"values_archived": 0, "values_matched": 0, "values_unmatched": 0,
                  "values_ambiguous": 0, "assets_linked": 0}
        cursor.execute(sql.SQL(LOCK_ASSETS).format(assets=sql.Identifier(ASSETS)),
                       {"start": start, "end": end})
        for text, link in FIELDS:
            cursor.execute(query(ARCHIVE_AND_LINK, text, link),
                           {"start": start, "end": end, "field": text})
            for name, value in zip(counts, cursor.fetchone(), strict=True):
                counts[name] += value
        return BatchResult(rows=counts["values_archived"], counts=counts)

    def count_remaining(self, cursor) -> int:
        remaining = 0
        for text, _ in FIELDS:
            cursor.execute(query(NOT_ARCHIVED, text), {"field": text})
            remaining += cursor.fetchone()[0]
        return remaining

    def remaining_key_range(self, cursor) -> tuple[int, int] | None:
        lows, highs = [], []
        for text, _ in FIELDS:
            cursor.execute(query(REMAINING_KEYS, text), {"field": text})
            low, high = cursor.fetchone()
            if low is not None:
                lows.append(low)
                highs.append(high)
        return (min(lows), max(highs)) if lows else None

    def estimate_total(self, cursor, min_key: int | None, max_key: int | None) -> int:
        cursor.execute(
            sql.SQL("SELECT count(nullif(btrim(coalesce(sector, '')), '')) "
                    "+ count(nullif(btrim(coalesce(industry, '')), '')) FROM {a}").format(
                a=sql.Identifier(ASSETS))
        )
        return cursor.fetchone()[0]
