"""`legacy_columns_undo`: take back the Sector / Industry links `legacy_columns` made.

`legacy_columns` records each link it sets on the archive row of the value it came from
(`assets_assetlegacytext.linked_id`); links the asset had before, and links the capture trigger
of 0008 set for the previous release's writes, are not recorded and not touched. `backfill undo
legacy_columns` runs this job over the archive: where the asset still has exactly the link the job
made, the link goes back to NULL and its record is cleared (so the job may link again); where the
asset's link changed since (re-classified by the application, or by a text the previous release
wrote), it is left as it is and reported, and its record stays as the trace of it. An asset that
is not there (merged away by `ticker_dedup`) keeps its record too: undo the merge first, then this
again. The archived values stay: they are the only copy of the text once 0013 drops the columns.

A batch done twice changes nothing: it takes back only a recorded link that still stands, and
clears the record in the statement that takes the link back. Done when no recorded link stands.
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from migrations_worker.job import BatchResult, UndoJob, register

from .legacy_columns import ARCHIVE, ASSETS, FIELDS

# One statement per field: the recorded links of the range whose asset is there, each taken back
# (and its record cleared) where it stands; the others are counted and keep their record.
UNLINK = """
WITH recorded AS (
    SELECT x.id, x.asset_id, x.linked_id, a.{link} AS link_now
    FROM {archive} x JOIN {assets} a ON a.id = x.asset_id
    WHERE x.id > %(start)s AND x.id <= %(end)s AND x.field = %(field)s
      AND x.linked_id IS NOT NULL
    FOR UPDATE OF x, a
), unlinked AS (
    UPDATE {assets} a SET {link} = NULL
    FROM recorded r
    WHERE a.id = r.asset_id AND a.{link} = r.linked_id
    RETURNING a.id
), cleared AS (
    UPDATE {archive} x SET linked_id = NULL
    FROM recorded r WHERE x.id = r.id AND r.link_now = r.linked_id
)
SELECT (SELECT count(*) FROM unlinked),
       (SELECT count(*) FROM recorded WHERE link_now IS DISTINCT FROM linked_id)
"""

# The "done when" verification: recorded links that still stand.
STANDING = """
SELECT count(*) FROM {archive} x JOIN {assets} a ON a.id = x.asset_id
WHERE x.field = %(field)s AND x.linked_id IS NOT NULL AND a.{link} = x.linked_id
"""

# Recorded links the undo left: changed since, or on an asset that is not there.
LEFT = """
SELECT x.asset_id, x.linked_id, x.value, a.id IS NULL, a.{link} FROM {archive} x
LEFT JOIN {assets} a ON a.id = x.asset_id
WHERE x.field = %(field)s AND x.linked_id IS NOT NULL
  AND (a.id IS NULL OR a.{link} IS DISTINCT FROM x.linked_id)
ORDER BY x.asset_id
"""


def query(template: str, link: str = "sector_ref_id") -> sql.Composed:
    return sql.SQL(template).format(link=sql.Identifier(link), assets=sql.Identifier(ASSETS),
                                    archive=sql.Identifier(ARCHIVE))


@register
class LegacyColumnsUndo(UndoJob):
    name = "legacy_columns_undo"
    undoes = "legacy_columns"
    table = ARCHIVE
    description = "take back the Sector/Industry links legacy_columns made (backfill undo)"
    watched_tables = (ASSETS, ARCHIVE)
    defaults = {"batch_size": 2_000, "max_batch_size": 20_000}

    def refusal(self, cursor) -> str:
        cursor.execute("SELECT to_regclass(%s) IS NULL", [ARCHIVE])
        if cursor.fetchone()[0]:
            return "nothing was linked: assets 0007 is not applied"
        return ""

    def process_batch(self, cursor, start: int, end: int) -> BatchResult:
        counts = {"links_taken_back": 0, "links_changed_since_kept": 0}
        for text, link in FIELDS:
            cursor.execute(query(UNLINK, link), {"start": start, "end": end, "field": text})
            taken, kept = cursor.fetchone()
            counts["links_taken_back"] += taken
            counts["links_changed_since_kept"] += kept
        return BatchResult(rows=counts["links_taken_back"], counts=counts)

    def count_remaining(self, cursor) -> int:
        remaining = 0
        for text, link in FIELDS:
            cursor.execute(query(STANDING, link), {"field": text})
            remaining += cursor.fetchone()[0]
        return remaining

    def estimate_total(self, cursor, min_key: int | None, max_key: int | None) -> int:
        return self.count_remaining(cursor)

    def findings(self, cursor, since: datetime) -> list[str]:
        lines = []
        for text, link in FIELDS:
            cursor.execute(query(LEFT, link), {"field": text})
            for asset, linked, value, gone, link_now in cursor.fetchall():
                made = f"{text} link {linked} (from {value!r})"
                lines.append(
                    f"asset {asset} is not there (merged away?): its {made} stays recorded; undo "
                    "ticker_dedup first, then this again" if gone else
                    f"asset {asset}: the {made} was changed since to {link_now}: left as it is")
        return lines
